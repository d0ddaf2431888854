"""A client who mistypes their new address sends the confirmation link to a stranger. The
link alone must not move the account there: the stranger would confirm, then reset the
password to their own mailbox. In a browser not signed in to the account, confirming asks for
the account's password, and a wrong one counts towards its lock as at /login."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Event, User
from services.signin import limits
from tests.accounts.conftest import new_address_link
from tests.conftest import TEST_PASSWORD, Browser, user_by_email

TYPO = "client@gmial.com"  # meant: client@gmail.com


def _link_to_the_typo(app, smtp, deliver, sign_in) -> str:
    return new_address_link(sign_in(), smtp, deliver, TYPO)


def test_the_link_alone_does_not_move_the_account(app, user, smtp, deliver, sign_in):
    path = _link_to_the_typo(app, smtp, deliver, sign_in)
    stranger = Browser(app)
    page = stranger.text(path)
    assert "enter the password you sign in with now" in page
    for typed in ({}, {"current_password": "a guess at it"}):
        answer = stranger.post(path, typed)
        assert answer.status_code == 422
    assert "That is not the password of the account" in answer.get_data(as_text=True)
    assert user_by_email(app, TYPO) is None and user_by_email(app, "client@example.com")
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "password_failed", Event.user_id == user)) == 1
    # The client themself, on another device, with their password: it moves.
    assert stranger.post(path, {"current_password": TEST_PASSWORD}).status_code == 302
    assert user_by_email(app, TYPO) is not None


def test_guessing_at_the_link_locks_the_account_as_at_login(app, user, smtp, deliver,
                                                            sign_in):
    path = _link_to_the_typo(app, smtp, deliver, sign_in)
    stranger = Browser(app)
    for _ in range(limits.FAILURES_BEFORE_LOCK):
        stranger.post(path, {"current_password": "a guess at it"})
    with app.app_context():
        assert db.session.get(User, user).locked_until is not None
    # Locked: not even the right password is checked now.
    answer = stranger.post(path, {"current_password": TEST_PASSWORD})
    assert answer.status_code == 422
    assert "signing in to this account is paused" in answer.get_data(as_text=True)
    assert user_by_email(app, TYPO) is None


def test_signed_in_to_the_account_the_button_is_enough(app, user, smtp, deliver, sign_in):
    b = sign_in()
    path = new_address_link(b, smtp, deliver, TYPO)
    assert 'name="current_password"' not in b.text(path)
    assert b.post(path, {}).status_code == 302
    assert user_by_email(app, TYPO) is not None
