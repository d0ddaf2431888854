"""The password a signed-in client types to make a change is guarded like the one at /login.

A passkey (or a trusted device) opens a session without the password, as often as its holder
likes. If the account pages' "current password" fields counted wrong guesses per session
only, whoever holds a passkey someone else added could guess the password five at a time
for ever, even while /login is locked, and then change the email address and the password.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from extensions import db
from models import Event, User
from services import clock
from services.signin import limits
from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with
from tests.conftest import TEST_PASSWORD, Browser

NEW = "plum tree by the river"


def _change_password(b: Browser, current: str):
    return b.post("/account/password", {"current_password": current,
                                         "password": NEW, "confirm": NEW})


def _events(app, type_: str) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Event.id)).where(Event.type == type_))


def _passkey_session(app, key: SoftKey) -> Browser:
    """A passkey sign-in, then past the 10 minutes in which no password is asked again."""
    b = Browser(app)
    assert sign_in_with(b, key).status_code == 200
    clock.advance(timedelta(minutes=11))
    return b


def test_wrong_current_passwords_across_sessions_lock_the_account(app, user, sign_in):
    key = SoftKey()
    add_passkey(sign_in(), key)
    for guess in range(limits.FAILURES_BEFORE_LOCK):
        if guess % 5 == 0:  # five wrong in one session sign it out; the passkey opens another
            b = _passkey_session(app, key)
        assert _change_password(b, f"guess {guess}").status_code in (302, 422)
    assert _events(app, "account_locked") == 1
    with app.app_context():
        assert db.session.get(User, user).is_locked(clock.now())
    assert b.get("/account/password").status_code == 302  # signed out

    # The lock holds here as at /login: even the right password is not checked, or counted.
    b = _passkey_session(app, key)
    response = _change_password(b, TEST_PASSWORD)
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert "signing in to this account is paused until" in b.text("/login")
    assert _events(app, "password_changed") == 0
    assert _events(app, "reauth_failed") == limits.FAILURES_BEFORE_LOCK


def test_a_lock_from_login_stops_the_account_pages_guessing_too(app, user, sign_in):
    key = SoftKey()
    add_passkey(sign_in(), key)
    locker = Browser(app)
    for _ in range(limits.FAILURES_BEFORE_LOCK):
        locker.log_in(password="wrong at login")
    assert locker.log_in().status_code == 429
    b = _passkey_session(app, key)  # a passkey still signs in during a lock (SECURITY.md 3.15)
    assert _change_password(b, TEST_PASSWORD).headers["Location"] == "/login"
    assert _events(app, "password_changed") == 0 and _events(app, "reauth_failed") == 0


def test_a_few_wrong_passwords_still_leave_tries(app, user, sign_in):
    b = sign_in()
    clock.advance(timedelta(minutes=11))
    response = _change_password(b, "not it")
    assert response.status_code == 422
    assert "You have 4 tries left" in response.get_data(as_text=True)
    assert _change_password(b, TEST_PASSWORD).status_code == 302
    assert _events(app, "account_locked") == 0
