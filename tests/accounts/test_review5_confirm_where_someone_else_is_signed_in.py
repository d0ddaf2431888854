"""A new-address link confirmed in a browser where another account is signed in.

The confirmation signs this browser out, to sign in with the new address; for another
account signed in here, it only dropped the cookie: that account's session stayed live on
the server, so a copy of the cookie still opened it (SECURITY.md 3.8: signing out ends the
session on the server). Now it is ended there too, and the trail says why; and the page with the button says, before
it happens, that the account signed in here will be signed out of this browser.
"""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import Event
from tests.accounts.conftest import new_address_link
from tests.conftest import TEST_PASSWORD, Browser, add_user

NEW = "new.address@example.com"
OTHER = "partner@example.com"
COOKIE = "clientgate_session"


def test_the_other_account_signed_in_here_is_signed_out_on_the_server(app, user, smtp,
                                                                     deliver, sign_in):
    add_user(app, OTHER)
    client = sign_in(b=Browser(app))
    path = new_address_link(client, smtp, deliver, NEW)

    shared = sign_in(OTHER, b=Browser(app))
    # Said before it happens, on the page with the button.
    assert f"<strong>{OTHER}</strong> is signed in on this browser" in shared.text(path)
    copy = app.test_client()
    copy.set_cookie(COOKIE, shared.client.get_cookie(COOKIE).value)
    answer = shared.post(path, {"current_password": TEST_PASSWORD})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    assert f"signed {OTHER} out of this browser" in shared.text("/login")
    assert shared.get("/portal").status_code == 302
    assert copy.get("/portal").status_code == 302  # the session ended on the server too
    with app.app_context():
        assert db.session.scalar(select(Event).where(Event.type == "logout")) is not None
