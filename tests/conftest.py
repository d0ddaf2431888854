"""Fixtures: the app on a throwaway database, a real SMTP server, and a browser-like client.

Tests go through the front door: they post forms with their CSRF tokens, and read codes out
of the emails that reached the SMTP server, as a client would.
"""

from __future__ import annotations

import atexit
import email
import email.policy
import functools
import os
import re
import shutil
import signal
import socket
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest
from aiosmtpd.controller import Controller
from argon2 import PasswordHasher
from sqlalchemy import create_engine, event, make_url, select, text
from sqlalchemy.pool import NullPool

from app import create_app
from config import TestConfig
from extensions import db
from models import User
from services import clock, delivery

CODE_IN_TEXT = re.compile(r"\b(\d{6})\b")
# The keep-or-new question's one-time nonce (issue 11), posted back as a browser would.
NONCE_IN_PAGE = re.compile(r'name="nonce" type="hidden" value="([^"]+)"')
CSRF_IN_PAGE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|name="csrf_token" value="([^"]+)"')

# One argon2 hash for every test user, so tests do not spend their time hashing; made at the
# tests' own low cost (TestConfig.PASSWORD_HASH_COST), so signing in does not either.
TEST_PASSWORD = "correct horse battery"
# Production's settings need a sender at a real domain (config.check_sender refuses localhost).
PRODUCTION_SENDER = "Test Firm <portal@firm.example>"
_TEST_HASH = PasswordHasher(**TestConfig.PASSWORD_HASH_COST).hash(TEST_PASSWORD)

# make_config(..., **AS_SERVERS_HASH) for the app that fills the database of servers the tests
# start as an operator does (gunicorn, CLIENTGATE_ENV=production): its users get a hash at the
# servers' real cost, which those servers would otherwise make again at each first sign-in.
AS_SERVERS_HASH = {"PASSWORD_HASH_COST": None}


@functools.cache
def _real_cost_hash() -> str:
    return PasswordHasher().hash(TEST_PASSWORD)


def _test_hash(app) -> str:
    if app.config.get("PASSWORD_HASH_COST") == TestConfig.PASSWORD_HASH_COST:
        return _TEST_HASH
    return _real_cost_hash()


_handed_out: set[int] = set()


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on, never one handed out before in this run.

    The kernel can give the same free port to two calls in a row (a test that asked for three
    got two alike, and its nginx refused to start with "a duplicate default server")."""
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


# --- what the app asks of its database --------------------------------------------------

# "SELECT", or the write and its table: "INSERT INTO events", "UPDATE sign_ins".
WRITE = re.compile(r"^\s*(INSERT INTO|UPDATE|DELETE FROM)\s+(\w+)", re.IGNORECASE)


@contextmanager
def statements_of(app):
    """The statements the app's engine runs inside the block, each as its kind."""
    seen: list[str] = []

    def note(_conn, _cursor, statement, *_args) -> None:
        write = WRITE.match(statement)
        seen.append(f"{write.group(1).upper()} {write.group(2)}" if write
                    else statement.split(None, 1)[0].upper())

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", note)


# --- a real SMTP server ------------------------------------------------------------------

@dataclass
class ReceivedMail:
    to: list[str]
    subject: str
    text: str
    headers: dict
    html: str = ""  # the HTML part, when the message has one
    peer: Optional[tuple] = None  # the client's (address, port): one per SMTP connection
    raw: bytes = b""  # the message as it came over the wire
    sender: str = ""  # the envelope's sender (MAIL FROM)

    @property
    def code(self) -> Optional[str]:
        match = CODE_IN_TEXT.search(self.text)
        return match.group(1) if match else None


class _Handler:
    def __init__(self, server: "SMTPServer") -> None:
        self.server = server

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.server.refuse_with:
            return self.server.refuse_with
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.server.refuse_data_with:
            return self.server.refuse_data_with
        if self.server.delay:
            import asyncio

            await asyncio.sleep(self.server.delay)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        body = message.get_body(preferencelist=("plain",))
        html = message.get_body(preferencelist=("html",))
        self.server._received(ReceivedMail(
            to=list(envelope.rcpt_tos), subject=str(message["Subject"]),
            text=body.get_content() if body else "", headers=dict(message.items()),
            html=html.get_content() if html else "", peer=tuple(session.peer),
            raw=envelope.content, sender=envelope.mail_from,
        ))
        return "250 Message accepted"


class SMTPServer:
    """An aiosmtpd server on 127.0.0.1 that keeps what it receives."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[ReceivedMail] = []
        self.refuse_with: Optional[str] = None  # e.g. "550 no such user"
        # The message's end refused, after its recipient was taken (e.g. "550 5.7.26 ...")
        self.refuse_data_with: Optional[str] = None
        self.delay = 0.0
        self._cond = threading.Condition()
        self._controller: Optional[Controller] = None

    def start(self) -> None:
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None

    def _received(self, mail: ReceivedMail) -> None:
        with self._cond:
            self.messages.append(mail)
            self._cond.notify_all()

    def wait_for(self, count: int = 1, timeout: float = 10) -> list[ReceivedMail]:
        """Wait until at least `count` messages arrived in all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.messages) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} messages, got {len(self.messages)}")
                self._cond.wait(left)
            return list(self.messages)

    def last_to(self, address: str) -> ReceivedMail:
        for mail in reversed(self.messages):
            if address in mail.to:
                return mail
        raise AssertionError(f"no message to {address}")


@pytest.fixture
def smtp():
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def vonage(app, tmp_path):
    """The app's texts through the real vonage SDK to Vonage's API stubbed on 127.0.0.1 over
    HTTPS (tests/vonage_stub.py). tests/sms and tests/hardening have their own, which point
    the app at it through their `app`."""
    from tests.vonage_stub import VonageStub

    stub = VonageStub(tmp_path)
    stub.start()
    app.config.update(stub.app_config())
    yield stub
    stub.stop()


# --- the app -----------------------------------------------------------------------------

def make_config(tmp_path, smtp_server: Optional[SMTPServer] = None, **overrides):
    """A TestConfig subclass on a file database in tmp_path (threads can share it)."""
    values = {
        "SQLALCHEMY_DATABASE_URI": os.environ.get("TEST_DATABASE_URL")
        or f"sqlite:///{tmp_path / 'test.db'}",
        "RATELIMIT_ENABLED": False,
    }
    if smtp_server is not None:
        values.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp_server.port, MAIL_TIMEOUT=5)
    values.update(overrides)
    return type("TestRunConfig", (TestConfig,), values)


# PostgreSQL databases whose tables this process made from the models, with their id sequences
# (see reset_schema).
_MADE: dict[str, list[str]] = {}


def reset_schema(app) -> None:
    """Empty tables, as new, for a test.

    On SQLite each test has a file of its own, which running_app starts as a copy of an empty
    one (`_copy_empty_sqlite`); an app on a file that is already there comes here. On
    PostgreSQL dropping and making them cost about 0.2 s in every test of the pass, so once
    this process has made them, the tables a test wrote to are emptied with TRUNCATE instead
    (`_empty_tables`). TRUNCATE gives a table new, empty files, as making it did, so rows come
    back in the order they were written, as from a new table (DELETE would leave the old pages,
    whose freed slots PostgreSQL fills out of order). If a table is missing, or this process
    has not made them yet (a database left by another run may hold older tables), they are
    dropped and made again."""
    with app.app_context():
        if _empty_tables(db.engine):
            return
        db.drop_all()
        db.create_all()
        if db.engine.dialect.name == "postgresql":
            _MADE[_key(db.engine)] = _id_sequences(db.engine)


def _key(engine) -> str:
    return engine.url.render_as_string(hide_password=False)


def _empty_tables(engine) -> bool:
    """On PostgreSQL, empty the tables this process made, if all are there: TRUNCATE those
    that hold or held a row (their files are not empty), and start every id sequence at 1
    (all of them: an insert that failed may have used a number without writing a row)."""
    sequences = _MADE.get(_key(engine))
    if sequences is None:
        return False
    names = [table.name for table in db.metadata.sorted_tables]
    with engine.begin() as connection:
        found = connection.execute(text(
            "SELECT c.relname, pg_relation_size(c.oid) > 0 FROM pg_catalog.pg_class c"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = current_schema() AND c.relkind = 'r'"
            " AND c.relname = ANY(:names)"), {"names": names}).all()
        if len(found) != len(names):
            return False
        quote = engine.dialect.identifier_preparer.quote
        written = [quote(name) for name, used in found if used]
        if written:
            connection.exec_driver_sql(f"TRUNCATE {', '.join(written)} CASCADE")
        connection.execute(text("SELECT setval(name, 1, false) FROM unnest(CAST(:sequences"
                                " AS text[])) AS name"), {"sequences": sequences})
    return True


def _id_sequences(engine) -> list[str]:
    with engine.connect() as connection:
        return connection.execute(text(
            "SELECT pg_get_serial_sequence(quote_ident(c.table_name), c.column_name)"
            " FROM information_schema.columns c"
            " WHERE c.table_schema = current_schema() AND c.table_name = ANY(:names)"
            " AND pg_get_serial_sequence(quote_ident(c.table_name), c.column_name) IS NOT NULL"),
            {"names": [table.name for table in db.metadata.sorted_tables]}).scalars().all()


@functools.lru_cache(maxsize=None)
def _sqlite_template() -> Path:
    """A SQLite file holding the empty tables, made once per process (removed at its end)."""
    folder = tempfile.mkdtemp(prefix="clientgate-schema-")
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    path = Path(folder) / "empty.db"
    engine = create_engine(f"sqlite:///{path}")
    db.metadata.create_all(engine)
    engine.dispose()
    return path


def _sqlite_file(config) -> Optional[Path]:
    url = make_url(config.SQLALCHEMY_DATABASE_URI)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _copy_empty_sqlite(config) -> bool:
    """A test's own SQLite file that does not exist yet starts as a copy of the template:
    making the tables in every test cost about 50 ms, and dropping them after another 25."""
    path = _sqlite_file(config)
    if path is None or path.exists():
        return False
    shutil.copyfile(_sqlite_template(), path)
    return True



def let_go(application) -> None:
    """Stop an app a test built on tables it keeps: its dispatcher, its session and its
    pool's connections."""
    application.extensions["dispatcher"].stop()
    with application.app_context():
        db.session.remove()
        db.engine.dispose()


@contextmanager
def running_app(config):
    """An app on fresh tables; afterwards its dispatcher stops, its rows go (on PostgreSQL) or
    its tables do (on SQLite, unless the file was the test's own new copy of the template:
    it goes with the test's folder), and the clock resets."""
    copied = _copy_empty_sqlite(config)
    application = create_app(_pooled(config))
    if not copied:
        reset_schema(application)
    try:
        yield application
    finally:
        application.extensions["dispatcher"].stop()
        with application.app_context():
            db.session.remove()
            if not copied and not _empty_tables(db.engine):
                db.drop_all()
            db.engine.dispose()
        clock.reset()


def _pooled(config):
    """TestConfig keeps no PostgreSQL connection waiting (NullPool), as an app a test lets go of
    must leave none open. An app made here is always closed after its test (its pools disposed),
    so it keeps them in a pool meanwhile (a new connection for every request made tests/security
    and test_auth_flow take 203 s on PostgreSQL instead of 122)."""
    options = dict(config.SQLALCHEMY_ENGINE_OPTIONS)
    if options.get("poolclass") is not NullPool:
        return config
    del options["poolclass"]
    return type(config.__name__, (config,), {"SQLALCHEMY_ENGINE_OPTIONS": options})


@pytest.fixture
def app(tmp_path, smtp):
    with running_app(make_config(tmp_path, smtp)) as application:
        yield application


@pytest.fixture
def deliver(app):
    """Run the dispatcher once, as the background thread would."""

    def run() -> int:
        with app.app_context():
            return delivery.run_once()

    return run


def add_user(app, email: str = "client@example.com", *, role: str = "client",
             channel: str = "email", phone: Optional[str] = None) -> int:
    with app.app_context():
        user = User(email=email, password_hash=_test_hash(app), role=role, channel=channel,
                    phone=phone, phone_verified_at=clock.now() if phone else None)
        db.session.add(user)
        db.session.commit()
        return user.id


@pytest.fixture
def user(app) -> int:
    return add_user(app)


# --- a browser-like client ---------------------------------------------------------------

class Browser:
    """A test client that reads CSRF tokens out of pages and posts them back, like a browser."""

    def __init__(self, app, user_agent: str = "Mozilla/5.0 (X11; Linux x86_64) Chrome/120 Test"):
        self.app = app
        self.client = app.test_client()
        self.client.environ_base["HTTP_USER_AGENT"] = user_agent
        self.last_csrf: Optional[str] = None
        self.last_nonce: Optional[str] = None

    def get(self, path: str, **kwargs):
        response = self.client.get(path, **kwargs)
        self._remember_csrf(response)
        return response

    def _remember_csrf(self, response) -> None:
        page = response.get_data(as_text=True)
        match = CSRF_IN_PAGE.search(page)
        if match:
            self.last_csrf = match.group(1) or match.group(2)
        nonce = NONCE_IN_PAGE.search(page)
        self.last_nonce = nonce.group(1) if nonce else None

    def csrf_for(self, path: str) -> str:
        self.get(path)
        assert self.last_csrf, f"no CSRF token on {path}"
        return self.last_csrf

    def post(self, path: str, data: Optional[dict] = None, *, form_page: Optional[str] = None,
             csrf: bool = True, **kwargs):
        data = dict(data or {})
        if csrf and "csrf_token" not in data:
            data["csrf_token"] = self.csrf_for(form_page or path)
            if "action" in data and "nonce" not in data and self.last_nonce:
                data["nonce"] = self.last_nonce
        response = self.client.post(path, data=data, **kwargs)
        self._remember_csrf(response)
        return response

    def log_in(self, email: str = "client@example.com", password: str = TEST_PASSWORD, **kw):
        return self.post("/login", {"email": email, "password": password}, **kw)

    def enter_code(self, code: str, **kw):
        return self.post("/login/code", {"code": code}, **kw)

    def text(self, path: str) -> str:
        return self.get(path).get_data(as_text=True)


@pytest.fixture
def browser(app) -> Browser:
    return Browser(app)


def request_code(b: Browser, smtp: SMTPServer, deliver, email: str = "client@example.com") -> str:
    """Pass the password as a client would, and return the code from the email that arrived."""
    count = len(smtp.messages)
    response = b.log_in(email)
    assert response.status_code == 302, response.get_data(as_text=True)
    deliver()
    smtp.wait_for(count + 1)
    return smtp.last_to(email).code


def wrong_code(code: str) -> str:
    """A well-formed code that is not this one."""
    return f"{(int(code) + 1) % 1_000_000:06d}"


@pytest.fixture
def sign_in(app, smtp, deliver, browser):
    """Sign `client@example.com` in through the front door; returns the browser."""

    def run(email: str = "client@example.com", b: Optional[Browser] = None) -> Browser:
        b = b or browser
        response = b.enter_code(request_code(b, smtp, deliver, email))
        assert response.status_code == 302, response.get_data(as_text=True)
        return b

    return run


def user_by_email(app, email: str) -> User:
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def at_once(*calls, timeout: float = 30) -> list:
    """Run each call in a thread of its own, all at once (with pause_in, they overlap where it
    matters); their results, in the order given."""
    results: list = [None] * len(calls)

    def run(index, call):
        results[index] = call()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    return results


def pause_in(monkeypatch, module, name: str, parties: int):
    """Make `module.name` wait, before doing its work, until `parties` requests are there (so
    requests posted at once really overlap); returns a function that puts the real one back."""
    barrier = threading.Barrier(parties)
    real = getattr(module, name)

    def paused(*args, **kwargs):
        try:
            barrier.wait(timeout=2)
        except threading.BrokenBarrierError:
            pass  # the others are waiting for a lock this request holds: go on
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, paused)
    return lambda: monkeypatch.setattr(module, name, real)


# --- Redis (shared request limits across servers) ----------------------------------------

class RedisServer:
    """Debian's redis-server on 127.0.0.1, with its own folder and no persistence."""

    def __init__(self, directory) -> None:
        self.port = free_port()
        self.directory = directory
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process = None

    def start(self, timeout: float = 20) -> None:
        import shutil
        import subprocess

        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--protected-mode", "yes", "--logfile", str(self.directory / "redis.log")],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited with {self.process.returncode}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1) as conn:
                    conn.sendall(b"PING\r\n")
                    if conn.recv(16).startswith(b"+PONG"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise AssertionError(f"redis-server did not answer within {timeout} s")

    @contextmanager
    def paused(self):
        """Redis stopped answering (SIGSTOP: its connections stay open, nothing comes back,
        as with a machine gone from the network) for the length of the block."""
        os.kill(self.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.process.pid, signal.SIGCONT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except Exception:
                self.process.kill()
                self.process.wait(5)


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A Redis for the whole run (skipped where redis-server is not installed)."""
    import shutil

    if not (shutil.which("redis-server") or os.path.exists("/usr/bin/redis-server")):
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()
