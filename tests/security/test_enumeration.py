"""No account enumeration: an unknown email and a wrong password look the same in every way
an attacker can see (message, status, headers, cookie contents, the code page, resend), and
cost the same argon2 work. Wall-clock time is not measured: the work done is counted."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Event, SignIn, User
from services import clock
from tests.conftest import _TEST_HASH, TEST_PASSWORD, Browser

EMAIL = "client@example.com"
UNKNOWN = "nobody@example.com"

# Values that differ between any two requests whatever the account: not a signal.
CSRF_VALUE = re.compile(r'(name="csrf_token"[^>]*value=")[^"]+"|(value=")[^"]+("[^>]*name="csrf_token")')
TIME_HEADERS = ("Date", "Set-Cookie", "X-RateLimit-Reset", "Retry-After")


def seen(response, typed_email: str = "") -> dict:
    """What an attacker sees of a response, with the parts that always differ masked."""
    body = response.get_data(as_text=True)
    body = CSRF_VALUE.sub("CSRF", body)
    if typed_email:
        body = body.replace(typed_email, "TYPED-EMAIL")
    headers = {k: v for k, v in response.headers.items() if k not in TIME_HEADERS}
    return {"status": response.status_code, "headers": headers, "body": body}


def session_of(app, browser: Browser) -> dict:
    """The decoded session cookie, without its CSRF secret."""
    with browser.client.session_transaction() as data:
        return {k: v for k, v in data.items() if k != "csrf_token"}


@pytest.fixture
def locked_user(app):
    """A second known account, locked right now."""
    with app.app_context():
        user = User(email="locked@example.com", password_hash=_TEST_HASH,
                    locked_until=clock.now() + timedelta(minutes=15), lockout_count=1)
        db.session.add(user)
        db.session.commit()
    return "locked@example.com"


def attempt(app, email: str, password: str = "not the password") -> tuple[dict, Browser]:
    browser = Browser(app)
    response = browser.log_in(email, password)
    return seen(response, email), browser


def test_unknown_email_wrong_password_and_locked_account_look_the_same(
        app, user, locked_user, argon2_calls):
    answers, browsers = {}, {}
    for email in (UNKNOWN, EMAIL, locked_user, "NoBody@Example.com"):
        before = argon2_calls["verify"]
        answers[email], browsers[email] = attempt(app, email)
        # One argon2 verification each: the same work, so the same time, whoever it is.
        assert argon2_calls["verify"] - before == 1, email
    assert argon2_calls["hash"] == 0
    first = answers[UNKNOWN]
    assert first["status"] == 200
    assert "The email address or password is not right" in first["body"]
    for email, answer in answers.items():
        assert answer == first, email
        assert session_of(app, browsers[email]) == session_of(app, browsers[UNKNOWN])


def test_a_code_already_on_its_way_is_not_revealed_without_the_password(
        app, user, smtp, deliver):
    """A known account with a pending sign-in elsewhere, wrong password: same as unknown."""
    elsewhere = Browser(app)
    assert elsewhere.log_in(EMAIL).status_code == 302
    unknown, _ = attempt(app, UNKNOWN)
    known, _ = attempt(app, EMAIL)
    assert known == unknown


def test_code_page_resend_and_status_say_nothing_about_the_account(app, user, locked_user):
    """After a failed password, the code steps look the same for any email typed."""
    views = {}
    for email in (UNKNOWN, EMAIL, locked_user):
        _, browser = attempt(app, email)
        views[email] = [
            seen(browser.client.get("/login/code")),
            seen(browser.post("/login/code", {"code": "123456"}, form_page="/login")),
            seen(browser.post("/login/code/resend", form_page="/login")),
            seen(browser.client.get("/login/code/status")),
            seen(browser.client.get("/login/code/status?sign_in=1")),
        ]
    assert views[EMAIL] == views[UNKNOWN]
    assert views[locked_user] == views[UNKNOWN]
    with app.app_context():
        assert db.session.scalars(select(SignIn)).all() == []


def test_request_limits_count_unknown_and_known_emails_alike(app, user, limits_on):
    limits_on(login_per_account="3 per hour")
    remaining = {}
    for n, email in enumerate((UNKNOWN, EMAIL)):
        browser = Browser(app)
        browser.client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n + 1}"  # a fresh IP count
        responses = [browser.log_in(email, "wrong") for _ in range(4)]
        remaining[email] = [(r.status_code, r.headers.get("X-RateLimit-Remaining"))
                            for r in responses]
    assert remaining[EMAIL] == remaining[UNKNOWN]
    assert remaining[EMAIL][-1][0] == 429


def test_lockout_only_shows_itself_to_the_right_password(app, user, locked_user):
    wrong, _ = attempt(app, locked_user)
    unknown, _ = attempt(app, UNKNOWN)
    assert wrong == unknown
    right = Browser(app).log_in(locked_user, TEST_PASSWORD)
    assert right.status_code == 429
    assert "paused until" in right.get_data(as_text=True)


def test_wrong_password_for_a_known_account_counts_but_unknown_email_records_no_user(
        app, user, argon2_calls):
    """The audit trail tells support what happened; nothing of it reaches the attacker."""
    attempt(app, UNKNOWN)
    attempt(app, EMAIL)
    with app.app_context():
        failed = db.session.scalars(select(Event).where(Event.type == "password_failed")
                                    .order_by(Event.id)).all()
    assert [e.user_id is None for e in failed] == [True, False]


def _limited_answers(app, email: str, n: int, times: int) -> list[tuple]:
    """`times` wrong passwords for `email` from a fresh address: status, and whether the
    page names a pause."""
    browser = Browser(app)
    browser.client.environ_base["REMOTE_ADDR"] = f"198.51.100.{n}"  # a fresh IP count
    answers = []
    for _ in range(times):
        response = browser.log_in(email, "wrong")
        answers.append((response.status_code, "paused until" in response.get_data(as_text=True),
                        response.headers.get("Retry-After")))
    return answers


def test_the_request_limit_page_does_not_show_a_lock(app, user, locked_user, limits_on):
    """The limit page once said "paused until" for a locked account, whoever locked it, and
    for an unknown address only if the prober had paused it."""
    limits_on(login_per_account="3 per hour")
    answers = {email: _limited_answers(app, email, n, 4)
               for n, email in enumerate((UNKNOWN, locked_user), start=1)}
    assert [a[:2] for a in answers[locked_user]] == [a[:2] for a in answers[UNKNOWN]]
    # Retry-After of answers a moment apart: the same, give or take the second between.
    assert abs(int(answers[locked_user][-1][2]) - int(answers[UNKNOWN][-1][2])) <= 1
    assert [status for status, _, _ in answers[UNKNOWN]] == [200, 200, 200, 429]
    assert not any(named for _, named, _ in answers[UNKNOWN])


def test_the_request_limit_waits_for_the_address_pause_alike(app, user, limits_on,
                                                             monkeypatch):
    """A limited password check waits for the later of the limit and the address's pause, and
    names that pause, by the rule that is the same for an account and for none."""
    from services.signin import limits

    monkeypatch.setattr(limits, "FAILURES_BEFORE_LOCK", 3)
    limits_on(login_per_account="4 per minute")
    answers = {email: _limited_answers(app, email, n, 5)
               for n, email in enumerate((UNKNOWN, EMAIL), start=1)}
    for email in (UNKNOWN, EMAIL):
        statuses = [status for status, _, _ in answers[email]]
        named = [named for _, named, _ in answers[email]]
        # The third pauses the address (said at once); the fourth is told nothing more; the
        # fifth meets the limit, whose page names the address's pause (issue 11) and waits
        # for it: alike for an account and for none.
        assert statuses == [200, 200, 429, 200, 429], email
        assert named == [False, False, True, False, True], email
        assert 14 * 60 < int(answers[email][-1][2]) <= 15 * 60, email


def test_the_owner_signing_in_does_not_change_what_the_tenth_wrong_password_says(
        app, user, sign_in):
    """What a wrong password is told depends on the wrong passwords for the address alone:
    a successful sign-in, which only the owner can make, once reset a known account's count,
    so the tenth got 200 for a known account and 429 for an unknown address."""
    known, unknown = Browser(app), Browser(app)
    for _ in range(9):
        assert seen(known.log_in(EMAIL, "wrong"), EMAIL) == \
            seen(unknown.log_in(UNKNOWN, "wrong"), UNKNOWN)
    sign_in()  # the owner, in their own browser
    tenth_known, tenth_unknown = known.log_in(EMAIL, "wrong"), unknown.log_in(UNKNOWN, "wrong")
    assert seen(tenth_known, EMAIL) == seen(tenth_unknown, UNKNOWN)
    assert tenth_known.status_code == 429
    assert abs(int(tenth_known.headers["Retry-After"])
               - int(tenth_unknown.headers["Retry-After"])) <= 1
    # The account's own lock still follows its rules: the owner's success started its count
    # again, so one wrong password since does not lock it, and the right password gets in.
    with app.app_context():
        assert db.session.get(User, user).locked_until is None
        db.session.remove()
