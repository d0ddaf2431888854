"""Data for the bench: users, prepared sign-ins with their cookies, and a million synthetic
sign-ins loaded in bulk (executemany on SQLite, COPY on PostgreSQL)."""

from __future__ import annotations

import random
import sqlite3
import time
from dataclasses import dataclass
from typing import Iterable, Iterator, Sequence

from flask import Flask, session
from flask_wtf.csrf import generate_csrf
from sqlalchemy import func, insert, select, text, update

from extensions import db
from models import Delivery, SignIn, User
from services import clock
from services.signin import codes

PASSWORD = "correct horse battery staple"
PREPARED_CODE = "246810"
BULK_TABLES = ("sign_ins", "deliveries", "events")


def add_users(app: Flask, emails: Sequence[str], password_hash: str, role: str = "client") -> None:
    """Add users that share one password hash (one argon2 hash, not thousands)."""
    at = clock.now()
    rows = [{"email": email, "password_hash": password_hash, "role": role, "channel": "email",
             "created_at": at, "lockout_count": 0} for email in emails]
    with app.app_context():
        for start in range(0, len(rows), 5000):
            db.session.execute(insert(User), rows[start:start + 5000])
        db.session.commit()


def _next_id(table) -> int:
    return (db.session.scalar(select(func.max(table.c.id))) or 0) + 1


def _fix_sequences(names: Iterable[str]) -> None:
    """After rows were inserted with explicit ids, move PostgreSQL's sequences past them."""
    if db.engine.dialect.name != "postgresql":
        return
    for name in names:
        db.session.execute(text(
            f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
            f"(SELECT COALESCE(MAX(id), 1) FROM {name}))"))


@dataclass
class Prepared:
    """A browser that has passed the password step: its cookie and the form's CSRF token."""

    cookies: dict
    csrf: str
    sign_in_id: int


def prepare_pending(app: Flask, count: int, prefix: str, password_hash: str) -> list[Prepared]:
    """`count` users, each with a pending sign-in whose code was sent, and the cookie of the
    browser that started it, as if each had posted their password.

    The rows are written directly, so that measuring the code post and the status endpoint
    does not first need `count` password checks (about 0.15 s of CPU each).
    """
    emails = [f"{prefix}-{i}@bench.example" for i in range(count)]
    add_users(app, emails, password_hash)
    with app.app_context():
        user_ids = dict(db.session.execute(
            select(User.email, User.id).where(User.email.in_(emails))).all())
        at = clock.now()
        first = _next_id(SignIn.__table__)
        first_delivery = _next_id(Delivery.__table__)
        sign_ins, deliveries = [], []
        for n, email in enumerate(emails):
            sign_in_id = first + n
            sign_ins.append({
                "id": sign_in_id, "user_id": user_ids[email], "created_at": at,
                "status": "pending", "channel": "email", "destination": email,
                "code_hash": codes.hash_code(codes.sign_in_scope(sign_in_id), PREPARED_CODE),
                "code_encrypted": None, "expires_at": at + codes.CODE_LIFETIME,
                "failed_attempts": 0, "resend_count": 0, "last_sent_at": at,
                "ip": "127.0.0.1", "user_agent": "ClientGateBench/1",
            })
            deliveries.append({
                "id": first_delivery + n, "user_id": user_ids[email], "sign_in_id": sign_in_id,
                "kind": "code", "channel": "email", "destination": email, "payload": {},
                "status": "sent", "attempts": 1, "next_attempt_at": at, "give_up_at": None,
                "client_ref": f"bench-{prefix}-{n}", "created_at": at, "sent_at": at,
            })
        db.session.execute(insert(SignIn.__table__), sign_ins)
        db.session.execute(insert(Delivery.__table__), deliveries)
        _fix_sequences(("sign_ins", "deliveries"))
        db.session.commit()
    serializer = app.session_interface.get_signing_serializer(app)
    prepared = []
    for row in sign_ins:
        with app.test_request_context("/login/code"):
            session["signin_id"] = row["id"]  # as the password post leaves them
            session["signin_user"] = row["user_id"]
            token = generate_csrf()
            cookie = serializer.dumps(dict(session))
        prepared.append(Prepared({app.config["SESSION_COOKIE_NAME"]: cookie}, token, row["id"]))
    return prepared


def end_prepared(app: Flask, sign_in_ids: list[int]) -> None:
    """Cancel the prepared sign-ins still pending, as if their browsers had gone away."""
    with app.app_context():
        for start in range(0, len(sign_in_ids), 500):
            db.session.execute(
                update(SignIn)
                .where(SignIn.id.in_(sign_in_ids[start:start + 500]), SignIn.status == "pending")
                .values(status="cancelled", ended_at=clock.now()),
                execution_options={"synchronize_session": False})
        db.session.commit()


# --- the million ------------------------------------------------------------------------

SIGN_IN_COLUMNS = ("id", "user_id", "created_at", "status", "ended_at", "superseded_by_id",
                   "channel", "destination", "code_hash", "code_encrypted", "expires_at",
                   "failed_attempts", "resend_count", "last_sent_at", "ip", "user_agent",
                   "next_url")
DELIVERY_COLUMNS = ("id", "user_id", "sign_in_id", "kind", "channel", "destination", "payload",
                    "code_encrypted", "status", "attempts", "next_attempt_at", "give_up_at",
                    "claimed_by", "claimed_until", "last_error", "client_ref", "provider_ref",
                    "created_at", "sent_at", "delivered_at", "failed_at")
EVENT_COLUMNS = ("id", "created_at", "type", "user_id", "sign_in_id", "delivery_id", "actor_id",
                 "outcome", "ip", "user_agent", "detail")

AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/120.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Safari/605.1.15",
)
# How old sign-ins ended: mostly completed, some replaced by a newer one, some left to expire.
OUTCOMES = ("completed",) * 85 + ("superseded",) * 8 + ("expired",) * 5 + ("locked",) * 2
CODE_OUTCOME = {"completed": "accepted", "superseded": "superseded", "expired": "expired",
                "locked": "locked"}


def _stamp(epoch: float) -> str:
    """UTC as SQLAlchemy stores it on SQLite; PostgreSQL reads it in a UTC session."""
    whole = int(epoch)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(whole)) + \
        ".%06d" % int((epoch - whole) * 1_000_000)


@dataclass
class BulkPlan:
    """Who gets the million sign-ins: many ordinary clients, and a few with a long history
    whose support page the bench opens."""

    sign_ins: int
    per_user: int = 100
    watched: int = 5
    watched_sign_ins: int = 1000
    days: int = 90  # RETENTION_DAYS: `flask prune` keeps no older history

    @property
    def users(self) -> int:
        rest = max(0, self.sign_ins - self.watched * self.watched_sign_ins)
        return max(1, rest // self.per_user)


def _rows(plan: BulkPlan, users: list[tuple[int, str]], watched: set[int], first_ids: dict,
          seed: int = 8) -> Iterator[tuple[str, tuple]]:
    """Rows in order: each user's sign-ins, oldest first, each with its message and events."""
    rng = random.Random(seed)
    now = time.time() - 3600  # everything ended at least an hour ago
    span = plan.days * 86400
    sign_in_id, delivery_id, event_id = (first_ids[t] for t in BULK_TABLES)
    remaining = plan.sign_ins
    ordinary = [u for u in users if u[0] not in watched]
    share = {user_id: plan.watched_sign_ins for user_id, _ in users if user_id in watched}
    left = remaining - sum(share.values())
    for n, (user_id, _) in enumerate(ordinary):
        share[user_id] = left // len(ordinary) + (1 if n < left % len(ordinary) else 0)
    for user_id, email in users:
        count = share.get(user_id, 0)
        moments = sorted(now - rng.random() * span for _ in range(count))
        ip = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        agent = AGENTS[rng.randrange(len(AGENTS))]
        for k, started in enumerate(moments):
            outcome = OUTCOMES[rng.randrange(len(OUTCOMES))]
            if outcome == "superseded" and k + 1 == count:
                outcome = "completed"
            ended = started + (600 if outcome == "expired" else 20 + rng.random() * 100)
            created, ended_at = _stamp(started), _stamp(ended)
            yield "sign_ins", (
                sign_in_id, user_id, created, outcome, ended_at,
                sign_in_id + 1 if outcome == "superseded" else None,
                "email", email, "%064x" % rng.getrandbits(256), None, _stamp(started + 600),
                5 if outcome == "locked" else 0, 0, created, ip, agent, None,
            )
            sent = _stamp(started + 1 + rng.random() * 3)
            yield "deliveries", (
                delivery_id, user_id, sign_in_id, "code", "email", email, "{}", None, "sent", 1,
                created, _stamp(started + 600), None, None, None, "b%039x" % delivery_id, None,
                created, sent, None, None,
            )
            events = [("signin_started", None, '{"channel": "email"}'),
                      ("delivery_queued", None, '{"channel": "email", "kind": "code"}'),
                      ("delivery_sent", "sent", '{"channel": "email", "attempts": 1}')]
            if user_id in watched:  # the full trail, as the app writes it
                events = [("password_ok", "ok", "{}"),
                          ("signin_started", None, '{"channel": "email"}'),
                          ("delivery_queued", None, '{"channel": "email", "kind": "code"}'),
                          ("delivery_sent", "sent", '{"channel": "email", "attempts": 1}')]
                if outcome != "expired":
                    events.append(("code_entry", CODE_OUTCOME[outcome], "{}"))
                if outcome == "completed":
                    events.append(("signed_in", None, "{}"))
            for e, (kind, result, detail) in enumerate(events):
                yield "events", (
                    event_id, _stamp(started + e * 2), kind, user_id, sign_in_id,
                    delivery_id if kind.startswith("delivery") else None, None, result, ip,
                    agent, detail,
                )
                event_id += 1
            sign_in_id += 1
            delivery_id += 1


COLUMNS = {"sign_ins": SIGN_IN_COLUMNS, "deliveries": DELIVERY_COLUMNS, "events": EVENT_COLUMNS}


class _SQLiteLoader:
    """executemany in one transaction, with the secondary indexes built after the rows."""

    def __init__(self, path: str) -> None:
        self.raw = sqlite3.connect(path, isolation_level=None)  # we say BEGIN and COMMIT
        self.saved_indexes: list[str] = []

    def begin(self) -> None:
        cursor = self.raw.cursor()
        # Rows refer to rows later in the load (superseded_by), as the app's own do.
        cursor.execute("PRAGMA foreign_keys = OFF")
        cursor.execute("PRAGMA synchronous = OFF")
        cursor.execute("BEGIN IMMEDIATE")
        for table in BULK_TABLES:
            for name, sql in cursor.execute(
                "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ? "
                "AND sql IS NOT NULL", (table,)).fetchall():
                self.saved_indexes.append(sql)
                cursor.execute(f'DROP INDEX "{name}"')

    def write(self, table: str, rows: list[tuple]) -> None:
        columns = COLUMNS[table]
        self.raw.cursor().executemany(
            f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
            rows)

    def finish(self) -> None:
        cursor = self.raw.cursor()
        for sql in self.saved_indexes:
            cursor.execute(sql)
        cursor.execute("COMMIT")
        self.raw.close()


class _PostgresLoader:
    """COPY in one transaction, with the secondary indexes built after the rows."""

    def __init__(self, engine) -> None:
        self.connection = engine.raw_connection()
        self.raw = self.connection.driver_connection
        self.saved_indexes: list[tuple[str, str]] = []

    def begin(self) -> None:
        cursor = self.raw.cursor()
        cursor.execute("SET TIME ZONE 'UTC'")
        cursor.execute("SET session_replication_role = replica")  # no FK triggers per row
        cursor.execute("SET maintenance_work_mem = '256MB'")
        for table in BULK_TABLES:
            cursor.execute(
                "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i "
                "JOIN pg_class c ON c.oid = i.indexrelid "
                "WHERE i.indrelid = %s::regclass AND NOT EXISTS "
                "(SELECT 1 FROM pg_constraint k WHERE k.conindid = i.indexrelid)", (table,))
            for name, definition in cursor.fetchall():
                self.saved_indexes.append((table, definition))
                cursor.execute(f'DROP INDEX "{name}"')

    def write(self, table: str, rows: list[tuple]) -> None:
        def field(value) -> str:
            return "\\N" if value is None else str(value)

        data = "".join("\t".join(map(field, row)) + "\n" for row in rows)
        cursor = self.raw.cursor()
        with cursor.copy(f"COPY {table} ({', '.join(COLUMNS[table])}) FROM STDIN") as copy:
            copy.write(data)

    def finish(self) -> None:
        cursor = self.raw.cursor()
        for _, definition in self.saved_indexes:
            cursor.execute(definition)
        cursor.execute("SET session_replication_role = DEFAULT")
        self.raw.commit()
        self.raw.autocommit = True
        for table in BULK_TABLES + ("users",):
            cursor.execute(f"ANALYZE {table}")  # what autovacuum would soon do by itself
        self.raw.autocommit = False
        self.connection.close()


def load_million(app: Flask, plan: BulkPlan, password_hash: str, progress=print) -> dict:
    """Load `plan.sign_ins` sign-ins (with messages and events) as fast as the database takes
    them; returns the row counts and seconds."""
    started = time.monotonic()
    emails = [f"client-{i}@bulk.example" for i in range(plan.users)]
    watched_emails = [f"watched-{i}@bulk.example" for i in range(plan.watched)]
    add_users(app, watched_emails + emails, password_hash)
    with app.app_context():
        users = db.session.execute(
            select(User.id, User.email).where(User.email.like("%@bulk.example"))
            .order_by(User.id)).all()
        watched = {user_id for user_id, email in users if email in watched_emails}
        first_ids = {name: _next_id(db.Model.metadata.tables[name]) for name in BULK_TABLES}
        db.session.remove()
        engine = db.engine
        engine.dispose()  # no pooled connection of ours may hold a lock during the load
        loader = (_PostgresLoader(engine) if engine.dialect.name == "postgresql"
                  else _SQLiteLoader(engine.url.database))
        loader.begin()
        batches: dict[str, list[tuple]] = {t: [] for t in BULK_TABLES}
        counts = dict.fromkeys(BULK_TABLES, 0)
        next_report = time.monotonic() + 20

        def flush() -> None:
            # Parents before children, so every batch refers to rows already written.
            for name in BULK_TABLES:
                if batches[name]:
                    loader.write(name, batches[name])
                    counts[name] += len(batches[name])
                    batches[name] = []

        for table, row in _rows(plan, users, watched, first_ids):
            batch = batches[table]
            batch.append(row)
            if len(batch) >= 20000:
                flush()
                if time.monotonic() > next_report:
                    progress(f"    ... {counts['sign_ins']:,} sign-ins so far "
                             f"({time.monotonic() - started:.0f} s)")
                    next_report += 20
        flush()
        loaded = time.monotonic()
        loader.finish()
        _fix_sequences(BULK_TABLES)
        db.session.commit()
    done = time.monotonic()
    return {"counts": counts, "users": len(users), "watched": sorted(watched),
            "rows_seconds": loaded - started, "index_seconds": done - loaded,
            "seconds": done - started}


def scale(app: Flask) -> dict:
    """How many rows the tables hold now."""
    with app.app_context():
        return {name: db.session.scalar(text(f"SELECT COUNT(*) FROM {name}"))
                for name in ("users",) + BULK_TABLES}

