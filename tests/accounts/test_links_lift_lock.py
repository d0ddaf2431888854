"""A new password set with a link from the mailbox (a reset, an accepted invitation) lifts a
lock from wrong passwords or codes: the page then says "now sign in", and that must be true."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import Event
from services.signin import limits
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser, user_by_email

CLIENT = "client@example.com"
NEW = "plum tree by the river"


def _wrong_passwords(b: Browser, count: int, email: str = CLIENT):
    for attempt in range(count):
        answer = b.log_in(email, f"not my password {attempt}")
    return answer


def _link(smtp, deliver, email: str, part: str, count: int) -> str:
    deliver()
    smtp.wait_for(count)
    return path_of(link_in(smtp.last_to(email).text, part))


def _unlocks(app) -> list[dict]:
    with app.app_context():
        return [e.detail for e in db.session.scalars(
            select(Event).where(Event.type == "account_unlocked").order_by(Event.id))]


def test_a_password_reset_lifts_the_lock_and_says_so(app, user, smtp, deliver):
    b = Browser(app)
    assert _wrong_passwords(b, limits.FAILURES_BEFORE_LOCK).status_code == 429
    assert user_by_email(app, CLIENT).locked_until is not None
    count = len(smtp.messages)
    b.post("/password/forgot", {"email": CLIENT})
    reset = _link(smtp, deliver, CLIENT, "/password/reset/", count + 1)
    answer = b.post(reset, {"password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    page = b.text("/login")
    assert "Your password is saved, and signing in is no longer paused. Now sign in" in page

    answer = b.log_in(CLIENT, NEW)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/code"
    assert _unlocks(app) == [{"by": "reset", "was_locked": True}]  # kept in the audit trail
    with app.app_context():
        assert db.session.scalar(select(Event.id).where(Event.type == "account_locked"))


def test_a_reset_starts_the_count_of_wrong_passwords_afresh(app, user, smtp, deliver):
    b = Browser(app)
    _wrong_passwords(b, limits.FAILURES_BEFORE_LOCK - 1)
    count = len(smtp.messages)
    b.post("/password/forgot", {"email": CLIENT})
    reset = _link(smtp, deliver, CLIENT, "/password/reset/", count + 1)
    b.post(reset, {"password": NEW, "confirm": NEW})
    assert "no longer paused" not in b.text("/login")  # it was not paused
    assert _unlocks(app) == [{"by": "reset", "was_locked": False}]

    b.log_in(CLIENT, "a typo in the new one")  # the old guesses no longer count towards a lock
    answer = b.log_in(CLIENT, NEW)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/code"


def test_a_reset_with_nothing_to_lift_records_no_unlock(app, user, smtp, deliver):
    b = Browser(app)
    count = len(smtp.messages)
    b.post("/password/forgot", {"email": CLIENT})
    reset = _link(smtp, deliver, CLIENT, "/password/reset/", count + 1)
    b.post(reset, {"password": NEW, "confirm": NEW})
    assert _unlocks(app) == []


def test_accepting_an_invitation_lifts_the_lock(app, smtp, deliver):
    count = len(smtp.messages)
    invited = app.test_cli_runner().invoke(args=["users", "invite", "anna@example.com"])
    assert invited.exit_code == 0, invited.output
    welcome = _link(smtp, deliver, "anna@example.com", "/welcome/", count + 1)
    b = Browser(app)
    # Before choosing a password, every password is wrong: guessing locks the account.
    assert _wrong_passwords(b, limits.FAILURES_BEFORE_LOCK, "anna@example.com").status_code \
        == 429
    assert user_by_email(app, "anna@example.com").locked_until is not None

    answer = b.post(welcome, {"password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    assert "no longer paused. Now sign in" in b.text("/login")
    answer = b.log_in("anna@example.com", NEW)
    assert answer.status_code == 302 and answer.headers["Location"] == "/login/code"
    assert _unlocks(app) == [{"by": "invitation", "was_locked": True}]


def test_where_codes_come_by_text_a_reset_leaves_the_lock_and_says_so(app, smtp, deliver):
    """There the lock also guards the second factor: whoever holds the mailbox must not buy
    ten more guesses at the texted code with each reset link."""
    from tests.conftest import add_user

    add_user(app, "texts@example.com", channel="sms", phone="+447400123456")
    b = Browser(app)
    answer = _wrong_passwords(b, limits.FAILURES_BEFORE_LOCK, "texts@example.com")
    assert answer.status_code == 429
    count = len(smtp.messages)
    b.post("/password/forgot", {"email": "texts@example.com"})
    reset = _link(smtp, deliver, "texts@example.com", "/password/reset/", count + 1)
    assert b.post(reset, {"password": NEW, "confirm": NEW}).status_code == 302
    assert "Signing in is still paused until" in b.text("/login")
    assert user_by_email(app, "texts@example.com").locked_until is not None
    assert _unlocks(app) == []
    again = b.log_in("texts@example.com", NEW)
    assert again.status_code == 429
    page = again.get_data(as_text=True)
    assert "the link we email you ends the pause" not in page
    assert "you can set a new one now" in page
