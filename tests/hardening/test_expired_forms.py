"""Issue 11, point 10: "Log out" and "Send the code again" on a page whose session has ended.

On the old code both answered 400 "That form had expired": a client who only wanted out was
told to reload and try again, and one waiting for a code was left on an error page.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from services import clock
from tests.conftest import Browser


# What Chromium sends with a form posted from one of the site's own pages.
FROM_THIS_SITE = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}


def _without_session(b: Browser) -> None:
    """The browser dropped the session cookie (it expired, or was cleared), as after a break."""
    b.client.delete_cookie("clientgate_session")


def test_log_out_from_a_page_left_open_logs_out(app, user, sign_in):
    b = sign_in()
    token = b.csrf_for("/portal")
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    _without_session(b)
    response = b.client.post("/logout", data={"csrf_token": token}, headers=FROM_THIS_SITE)
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "You have logged out." in b.text("/login")
    assert b.get("/portal").status_code == 302  # and stays out


def test_log_out_with_a_stale_token_still_ends_the_server_session(app, user, sign_in):
    b = sign_in()
    response = b.client.post("/logout", data={"csrf_token": "stale"},
                             headers={"Sec-Fetch-Site": "same-origin"})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert b.get("/portal").status_code == 302
    from sqlalchemy import select

    from extensions import db
    from models import AuthSession

    with app.app_context():
        assert all(row.revoked_at is not None
                   for row in db.session.scalars(select(AuthSession)))


@pytest.mark.parametrize("headers", [
    {}, {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "null"},
], ids=["no-origin", "another-site", "opaque-origin"])
def test_a_logout_form_from_elsewhere_only_offers_a_button(app, user, sign_in, headers):
    b = sign_in()
    response = b.client.post("/logout", data={"csrf_token": "stale"}, headers=headers)
    assert response.status_code == 400
    assert "Press Log out to log out" in response.get_data(as_text=True)
    assert b.get("/portal").status_code == 200  # still signed in
    # The page's own button works.
    page = response.get_data(as_text=True)
    token = page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    assert b.client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert b.get("/portal").status_code == 302


def test_resend_after_the_session_ended_goes_to_sign_in_with_a_message(app, user):
    b = Browser(app)
    assert b.log_in().status_code == 302
    token = b.csrf_for("/login/code")
    _without_session(b)
    response = b.client.post("/login/code/resend", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "nothing was sent" in b.text("/login")


def test_a_login_form_left_open_too_long_keeps_where_the_client_was_going(app, user):
    """A client sent from a protected app must still be taken back to it after signing in."""
    b = Browser(app)
    response = b.client.post("/login?next=/account/security",
                             data={"email": "client@example.com", "csrf_token": "stale"})
    assert response.status_code == 302
    assert response.location.endswith("/login?next=/account/security")
    assert "nothing was sent" in b.text(response.location)
    plain = b.client.post("/login", data={"csrf_token": "stale"})
    assert plain.location.endswith("/login")
