"""A reset or invitation link used in a browser where someone else is signed in.

On a shared computer or tablet, one person's account is often left signed in. Someone else
who sets their password there with a link was told "Now sign in with your email address and
new password", and landed on the other person's portal ("You are signed in as ..."), with
no sign-in page to do it on. Now the page with the form says whose password it sets and who
is signed in here; saving it signs that other person out of this browser (and only this
browser), and says so, so that the sign-in page is where they land.
"""

from __future__ import annotations

from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser, add_user

CLIENT = "client@example.com"
OTHER = "partner@example.com"
NEW = "plum tree by the river"


def reset_link(app, smtp, deliver) -> str:
    count = len(smtp.messages)
    assert Browser(app).post("/password/forgot", {"email": CLIENT}).status_code == 200
    deliver()
    smtp.wait_for(count + 1)
    return path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))


def test_a_reset_in_a_browser_where_someone_else_is_signed_in(app, user, smtp, deliver,
                                                              sign_in):
    add_user(app, OTHER)
    shared = sign_in(OTHER, b=Browser(app))
    elsewhere = sign_in(OTHER, b=Browser(app))
    path = reset_link(app, smtp, deliver)

    form = shared.text(path)
    assert f"<strong>{OTHER}</strong> is signed in on this browser" in form

    saved = shared.post(path, {"password": NEW, "confirm": NEW})
    assert saved.status_code == 302 and saved.headers["Location"] == "/login"
    page = shared.get("/login")
    assert page.status_code == 200  # the sign-in page, not the other person's portal
    words = page.get_data(as_text=True)
    assert "Your password is saved" in words and f"signed {OTHER} out of this browser" in words
    assert f'value="{CLIENT}"' in words  # the address is filled in, ready to sign in
    assert elsewhere.get("/portal").status_code == 200  # their other browsers are left alone
