"""Issue 11, point 4: resends and code caps hold when requests arrive at the same moment.

On the old code four resends posted together each read "0 resends, cooldown over", so all four
were sent and the count said 1 (in the attack: 5 sent while it said 3); and sign-ins at once
each counted the account's codes before any of them wrote, overshooting the hourly cap.

To make the race certain rather than lucky, every request pauses just before it queues its
message until all have arrived (or 2 s pass): on the old code all were past their checks by
then; on the new one the first holds the lock and the others wait for it, then are refused.
"""

from __future__ import annotations

import threading
from functools import partial

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Delivery, SignIn
from services import delivery
from tests.conftest import Browser, add_user, at_once, make_config, pause_in, running_app

AT_ONCE = 4


@pytest.fixture
def app(tmp_path, smtp, databases):
    """A file (or PostgreSQL) database that threads share, like workers do."""
    with running_app(make_config(tmp_path, smtp, SQLALCHEMY_DATABASE_URI=databases.new(),
                                 CODES_PER_ACCOUNT_PER_HOUR=10)) as application:
        yield application


@pytest.fixture
def databases(tmp_path):
    from tests.production.conftest import Databases

    made = Databases(tmp_path)
    yield made
    made.drop_all()


@pytest.fixture
def pause_before_queueing(monkeypatch):
    """Hold each request just before it queues a message until AT_ONCE have arrived."""
    pause_in(monkeypatch, delivery, "queue_code", AT_ONCE)


def _at_once(app, cookies: list[str], posts: list) -> list[int]:
    """Each (cookie, post) in its own thread, all let go at the same moment."""
    statuses: list[int] = []
    start = threading.Barrier(AT_ONCE)

    def run(cookie, post) -> None:
        client = app.test_client()
        client.set_cookie("clientgate_session", cookie)
        start.wait(timeout=30)
        response = post(client)
        statuses.append(response.status_code)

    at_once(*(partial(run, *pair) for pair in zip(cookies, posts)), timeout=60)
    return statuses


def _count(app, *where) -> int:
    with app.app_context():
        value = db.session.scalar(select(func.count(Delivery.id)).where(*where))
        db.session.remove()
        return value


def test_resends_at_once_send_once_and_count_once(app, pause_before_queueing):
    add_user(app)
    b = Browser(app)
    assert b.log_in().status_code == 302
    token = b.csrf_for("/login/code")
    cookie = b.client.get_cookie("clientgate_session").value
    from services import clock
    from datetime import timedelta

    clock.advance(timedelta(seconds=31))
    _at_once(app, [cookie] * AT_ONCE,
             [lambda c: c.post("/login/code/resend", data={"csrf_token": token})] * AT_ONCE)
    assert _count(app, Delivery.kind == "resend") == 1
    with app.app_context():
        assert db.session.scalar(select(SignIn.resend_count)) == 1
        db.session.remove()


def _cap_race(app, user_ids: list[int], ip: str) -> list[bool]:
    """Each thread: check the caps as a request does, pause, queue a code if allowed, commit."""
    start, middle = threading.Barrier(AT_ONCE), threading.Barrier(AT_ONCE)
    sent: list[bool] = []

    def run(user_id: int) -> None:
        with app.test_request_context("/login", method="POST",
                                      environ_base={"REMOTE_ADDR": ip}):
            from models import User
            from services.signin import limits

            user = db.session.get(User, user_id)
            start.wait(timeout=30)
            refusal = limits.code_send_refusal(user, ip)
            try:
                middle.wait(timeout=2)  # the old code: every thread is past its check here
            except threading.BrokenBarrierError:
                pass
            if refusal is None:
                delivery.queue_message(user_id=user_id, channel="email",
                                       destination="x@example.com", kind="phone_proof",
                                       template="security_change", values={})
            db.session.commit()
            sent.append(refusal is None)
            db.session.remove()

    at_once(*(partial(run, uid) for uid in user_ids), timeout=60)
    return sent


def _codes_already(app, user_id: int, count: int, ip: str) -> None:
    with app.test_request_context("/", environ_base={"REMOTE_ADDR": ip}):
        for _ in range(count):
            delivery.queue_message(user_id=user_id, channel="email", destination="x@example.com",
                                   kind="phone_proof", template="security_change", values={})
        db.session.commit()
        db.session.remove()


def test_code_sends_at_once_do_not_overshoot_the_account_cap(app):
    user_id = add_user(app)
    _codes_already(app, user_id, 9, "198.51.100.1")  # one more allowed this hour
    sent = _cap_race(app, [user_id] * AT_ONCE, "203.0.113.7")
    assert sent.count(True) == 1
    assert _count(app, Delivery.user_id == user_id) == 10


def test_code_sends_at_once_do_not_overshoot_the_address_cap(app):
    app.config["CODES_PER_IP_PER_HOUR"] = 10
    first = add_user(app, "first@example.com")
    _codes_already(app, first, 9, "203.0.113.7")
    others = [add_user(app, f"c{i}@example.com") for i in range(AT_ONCE)]
    sent = _cap_race(app, others, "203.0.113.7")
    assert sent.count(True) == 1
    assert _count(app) == 10
