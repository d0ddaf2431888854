"""The session a change keeps is given a new token: a copy of its old cookie opens nothing.

Changing the password, confirming a new email address here and "sign out everywhere else"
end every other session; the one they keep is this browser's. Someone who had copied this
browser's cookie (the very thing those actions are used against) held that session too, and
kept it. Now the kept session gets a new token, as a sign-in does (SECURITY.md 3.8), while
staying the same session: when it began, how it signed in, the apps' tokens it holds.
"""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import AuthSession
from tests.accounts.conftest import new_address_link
from tests.conftest import TEST_PASSWORD, Browser

NEW = "plum tree by the river"
COOKIE = "clientgate_session"


def copy_of(app, b: Browser):
    """Another browser holding a copy of `b`'s session cookie."""
    copy = app.test_client()
    copy.set_cookie(COOKIE, b.client.get_cookie(COOKIE).value)
    assert copy.get("/portal").status_code == 200
    return copy


def live_sessions(app) -> list[AuthSession]:
    with app.app_context():
        return db.session.scalars(
            select(AuthSession).where(AuthSession.revoked_at.is_(None))).all()


def test_changing_the_password_gives_this_browser_a_new_token(app, user, sign_in):
    b = sign_in()
    [before] = live_sessions(app)
    copy = copy_of(app, b)
    answer = b.post("/account/password", {"current_password": TEST_PASSWORD,
                                          "password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    assert b.get("/portal").status_code == 200  # this browser stays signed in
    assert copy.get("/portal").status_code == 302  # the copy of its old cookie does not
    [after] = live_sessions(app)
    # The same session, with a new token: when it began and how it signed in are kept.
    assert (after.id, after.created_at, after.amr) == (before.id, before.created_at, before.amr)
    assert after.token_hash != before.token_hash


def test_signing_out_everywhere_else_gives_this_browser_a_new_token(app, user, sign_in):
    b = sign_in()
    copy = copy_of(app, b)
    answer = b.post("/account/devices/sign-out-others", form_page="/account/devices")
    assert answer.status_code == 302
    assert b.get("/account/devices").status_code == 200
    assert copy.get("/portal").status_code == 302


def test_confirming_a_new_address_here_gives_this_browser_a_new_token(app, user, smtp,
                                                                     deliver, sign_in):
    b = sign_in()
    path = new_address_link(b, smtp, deliver, "new.address@example.com")
    copy = copy_of(app, b)
    assert b.post(path, {}).status_code == 302
    assert b.get("/portal").status_code == 200
    assert copy.get("/portal").status_code == 302
