"""Request limits, account lockout and the caps on codes sent, through the front door."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from flask_limiter.util import get_qualified_name
from sqlalchemy import func, select
from werkzeug.exceptions import TooManyRequests

from extensions import db, limiter
from models import AddressFailure, Delivery, Event, SignIn, User
from services import clock
from services.signin import limits
from tests.conftest import Browser, add_user, request_code, user_by_email, wrong_code

EMAIL = "client@example.com"
WAIT_IN_WORDS = re.compile(r"\b(?:wait|in) (\d+) (second|minute|hour)s?\b")


start = request_code  # pass the password, return the code that arrived by email


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def events(app, type_: str) -> list[Event]:
    with app.app_context():
        return db.session.scalars(select(Event).where(Event.type == type_)
                                  .order_by(Event.id)).all()


def assert_wait_page(response, *, most_seconds: int) -> int:
    """A 429 that says how long to wait in words and in Retry-After; returns the seconds."""
    assert response.status_code == 429
    text = response.get_data(as_text=True)
    assert WAIT_IN_WORDS.search(text), text
    seconds = int(response.headers["Retry-After"])
    assert 0 < seconds <= most_seconds
    return seconds


# --- waits in words ------------------------------------------------------------------------

@pytest.mark.parametrize("seconds, words", [
    (0.2, "1 second"), (45, "45 seconds"), (60, "1 minute"), (61, "2 minutes"),
    (900, "15 minutes"), (3600, "1 hour"), (3660, "1 hour and 1 minute"),
    (4 * 3600, "4 hours"), (86400, "24 hours"),
])
def test_wait_in_words(seconds, words):
    assert limits.wait_in_words(seconds) == words


# --- request limits (Flask-Limiter) ----------------------------------------------------------

def test_password_checks_limited_per_ip(app, user, limits_on, from_ip, argon2_calls):
    limits_on(login_per_ip="3 per hour")
    attacker = from_ip("198.51.100.7")
    for n in range(3):
        assert attacker.log_in(f"guess{n}@example.com", "password").status_code == 200
    verified = argon2_calls["verify"]
    response = attacker.log_in("guess9@example.com", "password")
    seconds = assert_wait_page(response, most_seconds=3600)
    assert "too many times" in response.get_data(as_text=True)
    assert seconds > 3000  # the hour's window, not a token minute
    assert argon2_calls["verify"] == verified  # refused before any password was checked
    # Someone else, elsewhere, is not held up.
    assert from_ip("203.0.113.9").log_in(EMAIL, "wrong").status_code == 200


def test_password_checks_limited_per_account_from_any_ip(app, user, limits_on, from_ip):
    limits_on(login_per_account="3 per hour")
    for n in range(3):
        assert from_ip(f"198.51.100.{n + 1}").log_in(EMAIL, "wrong").status_code == 200
    assert_wait_page(from_ip("198.51.100.50").log_in(EMAIL, "wrong"), most_seconds=3600)
    # The same email typed differently is the same account.
    assert from_ip("198.51.100.51").log_in("  Client@Example.COM ", "x").status_code == 429
    # So is another spelling of the same mailbox (full-width letters, an xn-- domain).
    assert from_ip("198.51.100.53").log_in("ｃｌｉｅｎｔ@ｅｘａｍｐｌｅ.com", "x").status_code == 429
    # Other accounts still work; and an unknown email is limited just the same (no hint).
    assert from_ip("198.51.100.52").log_in("other@example.com", "x").status_code == 200
    for n in range(3):
        from_ip(f"198.51.100.{60 + n}").log_in("nobody@example.com", "x")
    assert from_ip("198.51.100.70").log_in("nobody@example.com", "x").status_code == 429


def test_every_limited_view_says_which_methods_it_counts(app):
    """limits._nothing_to_count lets through, before Flask-Limiter looks, any request whose
    method its view does not say it counts: a limit that did not say so would never count."""
    limited = {}
    with app.app_context():
        for endpoint, view in app.view_functions.items():
            counted = {lim.methods for lim in limiter.limit_manager.decorated_limits(
                get_qualified_name(view))}
            if counted:
                limited[endpoint] = counted
                said = getattr(view, "counted_methods", ())
                assert counted == {None if said is None else tuple(m.lower() for m in said)}, \
                    endpoint
    assert {"auth.login", "auth.code", "auth.resend", "oidc.userinfo"} <= limited.keys()


def test_forged_forwarded_for_does_not_dodge_the_ip_limit(app, user, limits_on, browser):
    """Without PROXY_FIX_X_FOR nobody's X-Forwarded-For is believed."""
    limits_on(login_per_ip="2 per hour")
    for n in range(2):
        browser.post("/login", {"email": EMAIL, "password": "x"},
                     headers={"X-Forwarded-For": f"192.0.2.{n}"})
    response = browser.post("/login", {"email": EMAIL, "password": "x"},
                            headers={"X-Forwarded-For": "192.0.2.99"})
    assert response.status_code == 429


def test_code_entries_limited(app, user, smtp, deliver, browser, limits_on):
    limits_on(code_per_account="3 per hour")
    code = start(browser, smtp, deliver)
    for _ in range(3):
        assert browser.enter_code(wrong_code(code)).status_code == 422
    # Even the right code waits: the limit is checked before the code is.
    assert_wait_page(browser.enter_code(code), most_seconds=3600)
    with app.app_context():
        sign_in = db.session.scalar(select(SignIn))
        assert sign_in.failed_attempts == 3 and sign_in.status == "pending"


def test_code_entries_are_counted_per_account_across_browsers(app, user, smtp, deliver,
                                                               from_ip, limits_on):
    """The account's count follows it from one browser's sign-in to another's, whatever the
    address: the session names the account beside the sign-in."""
    limits_on(code_per_account="3 per hour")
    first, second = from_ip("192.0.2.1"), from_ip("198.51.100.7")
    code = start(first, smtp, deliver)
    for _ in range(2):
        assert first.enter_code(wrong_code(code)).status_code == 422
    sent = len(smtp.messages)
    second.log_in()
    second.post("/login", {"action": "new"})  # "send a new code": a sign-in of its own
    deliver()
    smtp.wait_for(sent + 1)
    new_code = smtp.last_to(EMAIL).code
    assert second.enter_code(wrong_code(new_code)).status_code == 422
    assert_wait_page(second.enter_code(new_code), most_seconds=3600)


def test_a_session_from_before_the_account_was_kept_is_still_counted_per_account(
        app, user, smtp, deliver, browser, limits_on):
    """A browser that started its sign-in before an upgrade has only the sign-in in its
    session: its account is looked up, and counted the same."""
    limits_on(code_per_account="2 per hour")
    code = start(browser, smtp, deliver)
    with browser.client.session_transaction() as data:
        assert data.pop("signin_user") == user_by_email(app, EMAIL).id
    for _ in range(2):
        assert browser.enter_code(wrong_code(code)).status_code == 422
    assert_wait_page(browser.enter_code(code), most_seconds=3600)


def test_resends_limited(app, user, smtp, deliver, browser, limits_on):
    limits_on(resend_per_ip="2 per hour")
    start(browser, smtp, deliver)
    for _ in range(2):
        clock.advance(timedelta(seconds=31))
        assert browser.post("/login/code/resend", form_page="/login/code").status_code == 302
    clock.advance(timedelta(seconds=31))
    response = browser.post("/login/code/resend", form_page="/login/code")
    assert_wait_page(response, most_seconds=3600)
    assert count(app, Delivery, Delivery.kind == "resend") == 2


def test_preference_changes_limited(app, user, sign_in, limits_on):
    if "account.security" not in app.view_functions:
        pytest.skip("/account/security is not written yet")
    limits_on(preferences_per_account="2 per hour")
    b = sign_in()
    for _ in range(2):
        assert b.post("/account/security", {"channel": "email"}).status_code != 429
    assert_wait_page(b.post("/account/security", {"channel": "email"}), most_seconds=3600)


def test_limit_page_is_json_for_the_status_endpoint(app, limits_on):
    """A 429 in JSON for scripts, with the wait in words too (the code page's live status)."""
    limits_on()
    with app.test_request_context("/login/code/status"):
        response = app.make_response(app.handle_user_exception(TooManyRequests()))
    assert response.status_code == 429
    assert WAIT_IN_WORDS.search(response.get_json()["error"])
    assert int(response.headers["Retry-After"]) > 0


# --- lockout ---------------------------------------------------------------------------------

def fail_passwords(browser: Browser, times: int, email: str = EMAIL) -> None:
    for _ in range(times):
        # 429 once the account is paused: the page says so at once (issue 11).
        assert browser.log_in(email, "not the password").status_code in (200, 429)


@pytest.fixture
def lock_after_three(monkeypatch):
    """Lock after 3 failures instead of 10, so tests spend less time on argon2."""
    monkeypatch.setattr(limits, "FAILURES_BEFORE_LOCK", 3)


def locked_until(app, email: str = EMAIL):
    return user_by_email(app, email).locked_until


def test_repeated_wrong_passwords_lock_the_account_and_email_the_client(
        app, user, smtp, deliver, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK - 1)
    assert locked_until(app) is None
    fail_passwords(browser, 1)
    until = locked_until(app)
    assert until is not None
    assert timedelta(minutes=14) < until - clock.now() <= limits.LOCK_DELAYS[0]

    deliver()
    mail = smtp.wait_for(1)[0]
    assert mail.to == [EMAIL]
    assert "paused" in mail.subject and "15 minutes" in mail.text
    assert mail.code is None  # a notice, never a code

    # The right password now says how long to wait, and sends no code.
    response = browser.log_in()
    assert_wait_page(response, most_seconds=15 * 60)
    text = response.get_data(as_text=True)
    assert "paused until" in text and "in 15 minutes" in text
    assert count(app, SignIn) == 0
    assert count(app, Delivery, Delivery.kind.in_(limits.CODE_KINDS)) == 0
    assert [e.outcome for e in events(app, "code_refused")] == ["locked"]

    # When the lock runs out, signing in works again.
    clock.advance(limits.LOCK_DELAYS[0] + timedelta(seconds=1))
    assert browser.log_in().status_code == 302


def test_wrong_codes_across_sign_ins_lock_the_account(app, user, smtp, deliver, browser):
    first = start(browser, smtp, deliver)
    for _ in range(5):  # the fifth ends this sign-in (the per-sign-in rule)
        browser.enter_code(wrong_code(first))
    fail_passwords(browser, 2)
    second = start(browser, smtp, deliver)
    for _ in range(2):
        assert browser.enter_code(wrong_code(second)).status_code == 422
    response = browser.enter_code(wrong_code(second))  # the tenth failure
    assert_wait_page(response, most_seconds=15 * 60)
    assert "paused until" in response.get_data(as_text=True)
    with app.app_context():
        statuses = db.session.scalars(select(SignIn.status).order_by(SignIn.id)).all()
        assert statuses == ["locked", "locked"]
        assert all(row.code_encrypted is None for row in db.session.scalars(select(SignIn)))
    # The right code of the locked sign-in does not get in.
    assert browser.enter_code(second).status_code == 429
    assert browser.get("/portal").status_code == 302


@pytest.mark.usefixtures("lock_after_three")
def test_lock_delays_grow_and_mail_once_per_lock(app, user, smtp, deliver, browser):
    waits = []
    for delay in limits.LOCK_DELAYS + (limits.LOCK_DELAYS[-1],):
        fail_passwords(browser, limits.FAILURES_BEFORE_LOCK)
        waits.append(locked_until(app) - clock.now())
        clock.advance(delay + timedelta(seconds=1))
    expected = list(limits.LOCK_DELAYS) + [limits.LOCK_DELAYS[-1]]
    assert [round(w.total_seconds() / 60) for w in waits] == [
        round(d.total_seconds() / 60) for d in expected]
    with app.app_context():
        assert db.session.scalar(select(User.lockout_count)) == len(expected)
    deliver()
    assert len(smtp.wait_for(len(expected))) == len(expected)


@pytest.mark.usefixtures("lock_after_three")
def test_guessing_during_a_lock_makes_it_longer_without_more_mail(
        app, user, smtp, deliver, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK)
    first_until = locked_until(app)
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK)
    assert locked_until(app) - first_until > timedelta(minutes=30)
    extended = events(app, "account_locked")
    assert [e.detail["extended"] for e in extended] == [False, True]
    deliver()
    smtp.wait_for(1)
    assert len(smtp.messages) == 1


@pytest.mark.usefixtures("lock_after_three")
def test_success_starts_the_count_again(app, user, smtp, deliver, browser, sign_in):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK - 1)
    sign_in()
    browser.post("/logout", form_page="/portal")
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK - 1)
    assert locked_until(app) is None


@pytest.mark.usefixtures("lock_after_three")
def test_old_failures_are_forgotten(app, user, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK - 1)
    clock.advance(limits.FAILURE_WINDOW + timedelta(minutes=1))
    fail_passwords(browser, 1)
    assert locked_until(app) is None


@pytest.mark.usefixtures("lock_after_three")
def test_unknown_emails_lock_nothing(app, user, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK + 1, email="nobody@example.com")
    assert locked_until(app) is None
    assert count(app, User) == 1


@pytest.mark.usefixtures("lock_after_three")
def test_support_can_lift_a_lock(app, user, smtp, deliver, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK)
    staff_id = add_user(app, "support@example.com", role="support")
    with app.app_context():
        client, staff = db.session.get(User, user), db.session.get(User, staff_id)
        assert limits.unlock_account(client, actor=staff) is True
        db.session.commit()
    assert locked_until(app) is None
    unlocked = events(app, "account_unlocked")[-1]
    assert unlocked.actor_id == staff_id and unlocked.detail["by"] == "support"
    assert browser.log_in().status_code == 302
    # Unlocking starts the count again: one more failure does not lock at once.
    fail_passwords(browser, 1)
    assert locked_until(app) is None


@pytest.mark.usefixtures("lock_after_three")
def test_cli_unlock(app, user, browser):
    fail_passwords(browser, limits.FAILURES_BEFORE_LOCK)
    result = app.test_cli_runner().invoke(args=["users", "unlock", EMAIL])
    assert result.exit_code == 0, result.output
    assert "is unlocked" in result.output
    assert locked_until(app) is None
    assert events(app, "account_unlocked")[-1].detail["by"] == "cli"
    assert browser.log_in().status_code == 302


# --- caps on codes sent ------------------------------------------------------------------------

def test_codes_per_account_per_hour(app, user, smtp, deliver, browser):
    app.config["CODES_PER_ACCOUNT_PER_HOUR"] = 3
    start(browser, smtp, deliver)
    clock.advance(timedelta(minutes=10))
    start(browser, smtp, deliver)
    clock.advance(timedelta(seconds=31))
    assert browser.post("/login/code/resend", form_page="/login/code").status_code == 302
    clock.advance(timedelta(seconds=31))
    # Third code of the hour sent; a fourth, by resend or by signing in again, is refused.
    response = browser.post("/login/code/resend", form_page="/login/code")
    seconds = assert_wait_page(response, most_seconds=3600)
    assert "most we send" in response.get_data(as_text=True)
    assert 48 * 60 < seconds <= 50 * 60  # until the first code of the hour is an hour old
    response = browser.log_in()
    assert_wait_page(response, most_seconds=3600)
    assert "We have sent this account 3 codes in the last hour" in response.get_data(as_text=True)
    assert count(app, SignIn) == 2
    assert count(app, Delivery, Delivery.kind.in_(limits.CODE_KINDS)) == 3
    # An hour after the first code, one more may go.
    clock.advance(timedelta(seconds=seconds))
    assert browser.log_in().status_code == 302


def test_codes_per_ip_per_hour(app, smtp, deliver, from_ip):
    app.config["CODES_PER_IP_PER_HOUR"] = 2
    for n in range(3):
        add_user(app, f"client{n}@example.com")
    # Two clients sign in from one network; a third client there must wait.
    for n in range(2):
        b = from_ip("198.51.100.20")
        assert b.log_in(f"client{n}@example.com").status_code == 302
    response = from_ip("198.51.100.20").log_in("client2@example.com")
    assert_wait_page(response, most_seconds=3600)
    assert "from your network" in response.get_data(as_text=True)
    # The same client elsewhere is fine.
    assert from_ip("203.0.113.5").log_in("client2@example.com").status_code == 302


def test_limits_hold_in_memory_when_redis_is_unreachable(app, user, limits_on, caplog):
    """A dead RATELIMIT_STORAGE_URI neither takes the sign-in page down nor lifts the limits."""
    app.config["RATELIMIT_STORAGE_URI"] = "redis://127.0.0.1:1/0"  # nothing listens there
    limits_on(login_per_ip="2 per hour")
    statuses = [Browser(app).log_in(EMAIL, "wrong").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    assert "falling back to in-memory storage" in caplog.text


# --- wrong passwords for addresses with no account: read through an index -----------------

def _plans(app, statements: list[tuple[str, object]]) -> list[str]:
    """The database's plan for each statement, seq scans made a last resort on PostgreSQL (so
    a "Seq Scan" in the plan means no index could serve it, whatever the table's size)."""
    plans = []
    with app.app_context():
        connection = db.session.connection()
        postgres = connection.dialect.name == "postgresql"
        if postgres:
            connection.exec_driver_sql("SET LOCAL enable_seqscan = off")
        for statement, parameters in statements:
            explain = "EXPLAIN " if postgres else "EXPLAIN QUERY PLAN "
            rows = connection.exec_driver_sql(explain + statement, parameters).all()
            plans.append(" | ".join(str(row[-1]) for row in rows))
        db.session.rollback()
        db.session.remove()
    return plans


def _seed_other_failures(app, how_many: int) -> None:
    """Wrong passwords for many other unknown addresses in the last day, as a stuffing wave
    leaves them: the audit events and the per-address rows."""
    at = clock.now()
    with app.app_context():
        db.session.execute(Event.__table__.insert(), [
            {"created_at": at - timedelta(seconds=n), "type": "password_failed",
             "outcome": "wrong", "detail": {"unknown_email": True, "email_key": f"{n:032x}"}}
            for n in range(how_many)])
        db.session.execute(AddressFailure.__table__.insert(), [
            {"created_at": at - timedelta(seconds=n), "email_key": f"{n:032x}", "kind": "wrong"}
            for n in range(how_many)])
        db.session.commit()
        db.session.remove()


@pytest.mark.parametrize("email", ["nobody@example.com", EMAIL])
def test_an_address_failures_are_read_through_an_index_known_or_not(app, user, browser, email):
    """An address's wrong passwords used to be found by reading every wrong password of the
    day and the JSON of each (a timing oracle, under SQLite's write lock). Every statement a
    wrong password now reads or deletes with goes through an index, for an unknown address as
    for a known one; none reads another address's rows or the events' JSON."""
    _seed_other_failures(app, 3000)
    seen: list[tuple[str, object]] = []

    def capture(_conn, _cursor, statement, parameters, _context, _executemany):
        if statement.lstrip().upper().startswith(("SELECT", "DELETE")):
            seen.append((statement, parameters))

    with app.app_context():
        engine = db.engine
    from sqlalchemy import event as sa_event

    sa_event.listen(engine, "before_cursor_execute", capture)
    try:
        for _ in range(limits.FAILURES_BEFORE_LOCK):  # up to and with the pause
            assert browser.log_in(email, "not the password").status_code in (200, 429)
    finally:
        sa_event.remove(engine, "before_cursor_execute", capture)

    statements = [pair for pair in seen if re.search(r"\b(address_failures|events)\b", pair[0])]
    assert any("address_failures" in statement for statement, _ in statements)
    assert not any("email_key" in statement and "events" in statement
                   for statement, _ in statements)
    for (statement, _), plan in zip(statements, _plans(app, statements)):
        assert not re.search(r"\bSCAN (address_failures|events)\b(?! USING)|Seq Scan", plan), (
            statement, plan)
        assert "address_failures" not in statement or "ix_address_failures" in plan, (
            statement, plan)


def test_address_failures_older_than_a_week_are_forgotten(app, user, browser):
    """The per-address rows prune themselves: each wrong password deletes a few of those no
    rule reads any more, so no other process has to."""
    fail_passwords(browser, 2, email="nobody@example.com")
    fail_passwords(browser, 1)
    assert count(app, AddressFailure) == 3
    clock.advance(limits.LOCK_MEMORY + timedelta(minutes=1))
    fail_passwords(browser, 1, email="someone.else@example.com")
    with app.app_context():
        assert db.session.scalars(select(AddressFailure.email_key)).all() == [
            limits.email_key("someone.else@example.com")]
        db.session.remove()
