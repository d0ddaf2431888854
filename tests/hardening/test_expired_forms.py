"""Issue 11, point 10: "Log out" and "Send the code again" on a page whose session has ended.

On the old code both answered 400 "That form had expired": a client who only wanted out was
told to reload and try again, and one waiting for a code was left on an error page.
"""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.conftest import Browser


def _without_session(b: Browser) -> None:
    """The browser dropped the session cookie (it expired, or was cleared), as after a break."""
    b.client.delete_cookie("clientgate_session")


def test_log_out_from_a_page_left_open_logs_out(app, user, sign_in):
    b = sign_in()
    token = b.csrf_for("/portal")
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))
    _without_session(b)
    response = b.client.post("/logout", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "You have logged out." in b.text("/login")
    assert b.get("/portal").status_code == 302  # and stays out


def test_log_out_with_a_stale_token_still_ends_the_server_session(app, user, sign_in):
    b = sign_in()
    response = b.client.post("/logout", data={"csrf_token": "stale"})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert b.get("/portal").status_code == 302
    from sqlalchemy import select

    from extensions import db
    from models import AuthSession

    with app.app_context():
        assert all(row.revoked_at is not None
                   for row in db.session.scalars(select(AuthSession)))


def test_resend_after_the_session_ended_goes_to_sign_in_with_a_message(app, user):
    b = Browser(app)
    assert b.log_in().status_code == 302
    token = b.csrf_for("/login/code")
    _without_session(b)
    response = b.client.post("/login/code/resend", data={"csrf_token": token})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "nothing was sent" in b.text("/login")
