"""Production as the operator's guide starts it: gunicorn, three workers, one database.

Each worker runs its own delivery dispatcher. Many messages queued at once must each be sent
exactly once; fifty clients signing in at once, several as the same user, must all get an
answer (no 5xx, no "database is locked") and leave exactly one live sign-in per user.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Delivery, SignIn, User
from services import delivery
from tests.conftest import AS_SERVERS_HASH, TEST_PASSWORD, add_user, make_config
from tests.production.conftest import MAIL_PASSWORD, SECRET_KEY, WebClient, wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def db_app(server, tmp_path):
    """This test process's own app on the server's database, to set up and to inspect."""
    from app import create_app

    application = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=server.database_url,
                                          **AS_SERVERS_HASH))
    yield application
    with application.app_context():
        db.session.remove()
        db.engine.dispose()



def deliveries(app, **where) -> list[Delivery]:
    with app.app_context():
        rows = db.session.scalars(select(Delivery).filter_by(**where)).all()
        db.session.expunge_all()
        db.session.remove()
        return rows


def assert_clean_log(server) -> None:
    log = server.log()
    assert "database is locked" not in log
    assert "Traceback" not in log and " ERROR " not in log, log[-4000:]


def test_every_worker_runs_a_dispatcher(server):
    """Queued messages go out with no other process to start: each worker beats."""
    def live_workers():
        status, _, body = server.request("GET", "/healthz")
        assert status == 200
        return '"workers":3' in body.replace(" ", "")

    assert wait_until(live_workers, timeout=60), server.request("GET", "/healthz")
    status, _, body = server.request("GET", "/healthz")
    assert '"alive":true' in body.replace(" ", "") and '"status":"ok"' in body.replace(" ", "")


def test_many_queued_messages_are_each_sent_exactly_once(server, module_smtp, db_app):
    count = 60
    before = len(module_smtp.messages)
    module_smtp.delay = 0.05  # a mail server that takes its time, so workers overlap
    try:
        with db_app.app_context():
            for i in range(count):
                delivery.queue_message(
                    user_id=None, channel="email", destination=f"bulk{i}@example.com",
                    kind="notice", template="security_change",
                    values={"when": "10:05", "change": f"bulk message {i}"},
                )
            db.session.commit()  # all due at the same moment, for every worker to see
            db.session.remove()

        def all_sent():
            rows = deliveries(db_app, kind="notice")
            return len(rows) == count and all(row.status == "sent" for row in rows)

        assert wait_until(all_sent, timeout=120), Counter(
            row.status for row in deliveries(db_app, kind="notice"))
        module_smtp.wait_for(before + count, timeout=30)
        time.sleep(1)  # a duplicate still on its way would arrive now
    finally:
        module_smtp.delay = 0

    received = [m for m in module_smtp.messages[before:] if m.to[0].startswith("bulk")]
    refs = Counter(m.headers.get("X-ClientGate-Ref") for m in received)
    rows = deliveries(db_app, kind="notice")
    assert len(received) == count, "a message was lost or sent twice"
    assert refs == Counter({row.client_ref: 1 for row in rows}), "sent twice or not at all"
    assert {m.to[0] for m in received} == {f"bulk{i}@example.com" for i in range(count)}
    assert all(row.attempts == 1 for row in rows)
    assert_clean_log(server)


def test_fifty_clients_signing_in_at_once(server, module_smtp, db_app):
    users = [f"storm{i}@example.com" for i in range(20)]
    for email in users:
        add_user(db_app, email)
    clients = [(WebClient(server, ip=f"203.0.113.{i + 1}"), users[i % len(users)])
               for i in range(50)]
    for client, _ in clients:
        assert client.get("/login")[0] == 200

    start = threading.Barrier(len(clients))
    answers: list = [None] * len(clients)

    def sign_in(index: int) -> None:
        client, email = clients[index]
        start.wait(timeout=60)
        try:
            status, headers, _ = client.post("/login", {"email": email, "password": TEST_PASSWORD})
            answers[index] = (status, headers.get("Location", ""))
        except Exception as exc:  # a dropped connection is a failure to report, not to hide
            answers[index] = (0, repr(exc))

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(len(clients))]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(180)
    elapsed = time.monotonic() - began
    print(f"\n50 simultaneous sign-ins answered in {elapsed:.1f} s")

    statuses = Counter(status for status, _ in answers)
    assert statuses == Counter({302: 50}), answers
    # Each went on to its code page, or (another browser of the same client was first)
    # to the question "keep the code already sent, or send a new one?".
    assert all(re.search(r"/login(/code)?$", location) for _, location in answers), answers
    started = Counter(clients[i][1] for i, (_, location) in enumerate(answers)
                      if location.endswith("/login/code"))

    with db_app.app_context():
        for email in users:
            user_id = db.session.scalar(select(User.id).where(User.email == email))
            by_status = Counter(dict(db.session.execute(
                select(SignIn.status, func.count()).where(SignIn.user_id == user_id)
                .group_by(SignIn.status)).all()))
            assert by_status["pending"] == 1, (email, by_status)
            assert sum(by_status.values()) == started[email], (email, by_status)
            assert by_status["superseded"] == started[email] - 1, (email, by_status)
        pending = db.session.scalars(select(SignIn).where(
            SignIn.status == "pending", SignIn.user_id.in_(
                select(User.id).where(User.email.like("storm%"))))).all()
        pending_ids = {s.id for s in pending}
        # PROXY_FIX_X_FOR=1: the address each client came from, as the proxy said.
        assert all(s.ip.startswith("203.0.113.") for s in pending)
        db.session.remove()

    # The live sign-ins' codes reach their clients, each once; superseded ones never twice.
    def pending_codes_sent():
        return all(row.status == "sent" for row in deliveries(db_app, kind="code")
                   if row.sign_in_id in pending_ids)

    assert wait_until(pending_codes_sent, timeout=120)
    time.sleep(1)
    refs = Counter(m.headers.get("X-ClientGate-Ref") for m in module_smtp.messages
                   if m.to[0].startswith("storm"))
    assert max(refs.values()) == 1
    sent_refs = {row.client_ref for row in deliveries(db_app, kind="code") if row.status == "sent"
                 and row.destination.startswith("storm")}
    assert set(refs) == sent_refs
    assert_clean_log(server)


def test_log_lines_are_one_per_event_and_hold_no_secret(server, module_smtp):
    log = server.log()
    assert "event=delivery_sent" in log  # the workers did log what they did
    for line in log.splitlines():
        # Ours: "2026-11-27 10:05:00,123 INFO clientgate.audit[123] event=...";
        # gunicorn's own: "[2026-11-27 10:05:00 +0000] [123] [INFO] Booting worker".
        assert re.match(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \S+\[\d+\] |\[\d{4}-)",
                        line), f"not a log line of its own: {line!r}"
    assert SECRET_KEY not in log and MAIL_PASSWORD not in log
    for mail in module_smtp.messages:
        if mail.code:
            assert not re.search(rf"\b{mail.code}\b", log), "a code reached the log"
