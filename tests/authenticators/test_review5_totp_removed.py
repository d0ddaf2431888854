"""Removing the authenticator app ends the sign-ins still waiting for one of its codes."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import Event, SignIn
from services import clock
from tests.authenticators.conftest import totp_now
from tests.conftest import TEST_PASSWORD, Browser


def test_a_sign_in_waiting_for_an_app_code_ends_when_the_app_is_removed(
        app, set_up_app, browser):
    secret = set_up_app()
    waiting = Browser(app)
    assert waiting.log_in().location.endswith("/login/code")

    removed = browser.post("/account/security", {"form": "totp-remove",
                                                 "password": TEST_PASSWORD})
    assert removed.status_code == 302

    # The app on the phone still shows codes: typed here, they were judged against no app,
    # each "not right" and counted towards the account's lock, with tries ticking down.
    clock.advance(timedelta(seconds=30))
    answer = waiting.enter_code(totp_now(secret))
    text = answer.get_data(as_text=True)
    assert answer.status_code == 422
    assert "That code is not right" not in text
    assert "This sign-in was ended before its code was entered" in text
    with app.app_context():
        sign_in = db.session.scalars(select(SignIn).order_by(SignIn.id.desc())).first()
        assert sign_in.channel == "totp" and sign_in.status == "cancelled"
        assert sign_in.failed_attempts == 0
        assert db.session.scalar(select(Event.detail).where(
            Event.type == "signin_cancelled", Event.sign_in_id == sign_in.id)) == {
                "by": "totp_removed"}
    # Signing in again sends a code by email, as the security page said.
    assert waiting.log_in().location.endswith("/login/code")
    with app.app_context():
        newest = db.session.scalars(select(SignIn).order_by(SignIn.id.desc())).first()
        assert newest.channel == "email" and newest.status == "pending"
