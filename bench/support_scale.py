"""How fast the support console answers with a million sign-ins in the database.

    .venv/bin/python bench/support_scale.py [--sign-ins 1000000] [--db /tmp/support-bench.db]

Fills a SQLite file (created with the app's own schema) with clients, sign-ins spread over
120 days, their messages and audit events, one client with many thousands of sign-ins, and
some failures; then times the console's queries and pages, and `prune`. Prints one line per
measurement. The data is synthetic and made directly with SQL, so filling is quick.
"""

from __future__ import annotations

import argparse
import json
import random
import sqlite3
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import render_template  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from config import TestConfig  # noqa: E402
from extensions import db  # noqa: E402
from models import User  # noqa: E402
from services import support  # noqa: E402
from services.support import retention

UA = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.6099.144 Mobile Safari/537.36")
HEAVY_SIGN_INS = 20_000


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")


def fill(path: str, sign_ins: int, clients: int) -> None:
    """Write users, sign-ins, deliveries and events straight into the SQLite file."""
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode = WAL")
    connection.execute("PRAGMA synchronous = OFF")
    now = datetime.now(timezone.utc).replace(tzinfo=None)
    start = now - timedelta(days=120)
    connection.executemany(
        "INSERT INTO users (id, email, password_hash, role, channel, phone, created_at, "
        "lockout_count) VALUES (?, ?, 'x', 'client', 'email', ?, ?, 0)",
        ((i, f"client{i}@example.com", f"+4474{i:08d}", stamp(start)) for i in
         range(1, clients + 1)),
    )
    rng = random.Random(1)
    step = timedelta(days=120) / sign_ins
    delivery_id = event_id = 0
    sign_in_rows, delivery_rows, event_rows = [], [], []

    def flush() -> None:
        connection.executemany(
            "INSERT INTO sign_ins (id, user_id, created_at, status, ended_at, channel, "
            "destination, code_hash, expires_at, failed_attempts, resend_count, ip, "
            "user_agent) VALUES (?,?,?,?,?,'email',?,'h',?,?,0,'192.0.2.1',?)", sign_in_rows)
        connection.executemany(
            "INSERT INTO deliveries (id, user_id, sign_in_id, kind, channel, destination, "
            "payload, status, attempts, next_attempt_at, last_error, created_at, sent_at, "
            "failed_at) VALUES (?,?,?,'code','email',?,'{}',?,1,?,?,?,?,?)", delivery_rows)
        connection.executemany(
            "INSERT INTO events (id, created_at, type, user_id, sign_in_id, delivery_id, "
            "outcome, ip, detail) VALUES (?,?,?,?,?,?,?,'192.0.2.1',?)", event_rows)
        connection.commit()
        sign_in_rows.clear(), delivery_rows.clear(), event_rows.clear()

    for n in range(1, sign_ins + 1):
        user_id = 1 if n % (sign_ins // HEAVY_SIGN_INS or 1) == 0 else rng.randint(2, clients)
        at = start + step * n
        email = f"client{user_id}@example.com"
        roll = rng.random()
        status = "completed" if roll < 0.9 else ("expired" if roll < 0.97 else "locked")
        failed = roll >= 0.995  # a few deliveries fail outright
        sign_in_rows.append((n, user_id, stamp(at), status, stamp(at + timedelta(minutes=1)),
                             email, stamp(at + timedelta(minutes=10)),
                             5 if status == "locked" else 0, UA))
        delivery_id += 1
        delivery_rows.append((delivery_id, user_id, n, email, "failed" if failed else "sent",
                              stamp(at), "the mail server refused the address" if failed
                              else None, stamp(at), None if failed else stamp(at),
                              stamp(at) if failed else None))
        events = [("signin_started", None, None), ("delivery_queued", delivery_id, None),
                  ("delivery_failed" if failed else "delivery_sent", delivery_id,
                   "failed" if failed else "sent")]
        if status == "completed":
            events += [("code_entry", None, "accepted"), ("signed_in", None, None)]
        elif status == "expired":
            events += [("signin_expired", None, None)]
        else:
            events += [("code_entry", None, "wrong")] * 4 + [("code_entry", None, "locked")]
        for type_, item, outcome in events:
            event_id += 1
            event_rows.append((event_id, stamp(at), type_, user_id, n, item, outcome,
                               json.dumps({})))
        if n % 50_000 == 0:
            flush()
            print(f"  filled {n} sign-ins", flush=True)
    flush()
    connection.execute("ANALYZE")
    connection.close()


def timed(label: str, run, repeat: int = 3):
    best = float("inf")
    for _ in range(repeat):
        began = time.perf_counter()
        result = run()
        best = min(best, time.perf_counter() - began)
    print(f"{label:<48} {best * 1000:8.1f} ms")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sign-ins", type=int, default=1_000_000)
    parser.add_argument("--clients", type=int, default=50_000)
    parser.add_argument("--db", default="/tmp/support-bench.db")
    parser.add_argument("--keep", action="store_true", help="reuse an existing filled file")
    args = parser.parse_args()

    config = type("BenchConfig", (TestConfig,), {
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{args.db}", "RATELIMIT_ENABLED": False})
    app = create_app(config)
    if not (args.keep and Path(args.db).exists()):
        for suffix in ("", "-wal", "-shm"):
            Path(args.db + suffix).unlink(missing_ok=True)
        with app.app_context():
            db.create_all()
        began = time.perf_counter()
        fill(args.db, args.sign_ins, args.clients)
        print(f"filled in {time.perf_counter() - began:.0f} s")

    tz = app.config["PORTAL_TIMEZONE"]
    with app.test_request_context():
        heavy = db.session.get(User, 1)
        normal = db.session.get(User, 2)
        page = timed("client page, 20k-sign-in client (queries)",
                     lambda: support.client_page(heavy, None, tz))
        timed("client page, 20k-sign-in client (rendered)", lambda: render_template(
            "support/client.html", page=support.client_page(heavy, None, tz), actions={},
            may_change=True, tz=tz))
        deep = page.views[-1].sign_in.id
        for _ in range(200):  # walk 200 pages back: the cursor stays an index range
            deep = support.client_page(heavy, deep, tz).older or deep
        timed("client page, 4000 sign-ins back", lambda: support.client_page(heavy, deep, tz))
        timed("client page, an ordinary client", lambda: support.client_page(normal, None, tz))
        timed("recent sign-ins that went wrong", lambda: support.recent_problems(tz))
        timed("find a client by part of an email", lambda: support.find_clients("client4242"))
        timed("find a client by part of a phone", lambda: support.find_clients("07400004242"))
        timed("export, 20k-sign-in client", lambda: sum(
            len(chunk) for chunk in support.export_csv(heavy.id, tz)), repeat=1)
        count = db.session.scalar(select(db.func.count()).select_from(User))
        print(f"({count} users)")
    with app.app_context():
        result = timed("prune to 90 days (first run)", lambda: retention.prune(90), repeat=1)
        print(f"  pruned {result.sign_ins} sign-ins, {result.events} events, "
              f"{result.deliveries} messages")
        timed("prune again (nothing to do)", lambda: retention.prune(90), repeat=1)


if __name__ == "__main__":
    main()
