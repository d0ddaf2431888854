"""What a sign-in asks of the database (issue 16). The sign-in path writes each row once, as
a plain statement, at the moment it decides to: a change that brings the ORM's unit of work
back onto it (a row written again at the flush, a lazy load, a second read) shows here."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
from sqlalchemy import event, select

from extensions import db, limiter
from models import Event
from services import delivery
from tests.conftest import TEST_PASSWORD, request_code, statements_of

@pytest.mark.parametrize("limits_on", [False, True], ids=["limits off", "limits on"])
def test_a_right_code_is_two_locked_reads_and_each_row_written_once(app, user, smtp, deliver,
                                                                     browser, limits_on):
    """With Flask-Limiter on, as in production, the code post's per-account limit takes the
    account from the session: the statements are the same as with it off."""
    if limits_on:
        app.config["RATELIMIT_ENABLED"] = True
        limiter.init_app(app)  # fresh memory storage, and the limiter's request hooks
    code = request_code(browser, smtp, deliver)
    token = browser.csrf_for("/login/code")
    with statements_of(app) as seen:
        response = browser.post("/login/code", {"code": code, "csrf_token": token})
    assert response.status_code == 302 and response.headers["Location"] == "/portal"
    assert ("X-RateLimit-Limit" in response.headers) is limits_on  # the limiter ran, or not
    assert seen == [
        "SELECT",  # the account's row lock, taken first as on every path (no deadlock)
        "SELECT",  # the sign-in, under its lock, with its user
        "UPDATE sign_ins",  # completed, its code wiped
        "UPDATE deliveries",  # its messages: none keeps the code
        "INSERT INTO auth_sessions",  # the new session
        "INSERT INTO events",  # code_entry (accepted) and signed_in, together at the commit
    ]
    with app.app_context():
        assert _newest_events(2) == [("code_entry", "accepted"), ("signed_in", None)]


def test_a_password_post_writes_each_row_once(app, user, browser):
    token = browser.csrf_for("/login")
    with statements_of(app) as seen:
        response = browser.post("/login", {"email": "client@example.com",
                                           "password": TEST_PASSWORD, "csrf_token": token})
    assert response.status_code == 302, response.get_data(as_text=True)
    writes = [kind for kind in seen if kind != "SELECT"]
    # The sign-in's row, then its code's hash (bound to its id); one message; then its three
    # events (password_ok, signin_started, delivery_queued) in one INSERT at the commit.
    # Nothing is written a second time.
    assert writes == ["INSERT INTO sign_ins", "UPDATE sign_ins", "INSERT INTO deliveries",
                      "INSERT INTO events"]
    with app.app_context():
        assert _newest_events(3) == [("password_ok", "ok"), ("signin_started", None),
                                     ("delivery_queued", None)]
    # The account, the pending sign-ins before and under the account's lock, that lock (on
    # PostgreSQL with the address's advisory lock, in one statement), and both caps (account
    # and address) in one statement: each asked once.
    assert seen.count("SELECT") == 5


def _newest_events(count: int) -> list[tuple[str, str]]:
    """The trail's last events, oldest first, as (type, outcome)."""
    rows = db.session.execute(select(Event.type, Event.outcome)
                              .order_by(Event.id.desc()).limit(count)).all()
    return [tuple(row) for row in reversed(rows)]


def test_the_code_page_reads_the_sign_in_with_its_user(app, user, smtp, deliver, browser):
    request_code(browser, smtp, deliver)
    with statements_of(app) as seen:
        assert browser.get("/login/code").status_code == 200
    assert seen == ["SELECT", "SELECT"]  # the sign-in with its user; its newest message


@contextmanager
def transaction_ends_of(app):
    """How each transaction of the app's engine ends, in order: "commit" or "rollback"."""
    ends: list[str] = []
    with app.app_context():
        engine = db.engine
    listeners = {kind: (lambda _conn, kind=kind: ends.append(kind))
                 for kind in ("commit", "rollback")}
    for kind, listener in listeners.items():
        event.listen(engine, kind, listener)
    try:
        yield ends
    finally:
        for kind, listener in listeners.items():
            event.remove(engine, kind, listener)


def test_sending_a_code_is_three_transactions(app, user, smtp, browser):
    assert browser.log_in().status_code == 302
    with statements_of(app) as seen, transaction_ends_of(app) as ends:
        with app.app_context():
            assert delivery.run_once(sweep=False) == 1
    smtp.wait_for(1)
    assert seen == [
        "SELECT",  # what is due
        "UPDATE deliveries",  # claimed, committed with the read
        "SELECT",  # the message with its sign-in (does it still wait?)
        "UPDATE deliveries",  # sent: the code wiped
        "INSERT INTO events",  # delivery_sent
    ]
    # The claim; the read, ended before the mail server is spoken to; the outcome.
    assert ends == ["commit", "commit", "commit"]
