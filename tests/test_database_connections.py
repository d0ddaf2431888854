"""Pooled connections to a database server are checked before use without a round trip each
time (db_setup.check_before_use): one the server closed is replaced, one that sat idle is
pinged, one used a moment ago goes straight to work. And on PostgreSQL a transaction begins
at its first write or lock, as on SQLite (db_setup.begin_at_first_write)."""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager

import pytest
from sqlalchemy import create_engine, event, select, text, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

import db_setup
from extensions import db
from models import User
from tests.conftest import request_code

BACKEND = text("SELECT pg_backend_pid()")


@pytest.fixture
def engine(app):
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "postgresql":
        pytest.skip("a database server's connections: SQLite has none to lose")
    return engine


@pytest.fixture
def pings(engine, monkeypatch):
    """The pings sent, counted (each still goes to the server)."""
    sent: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection):
        sent.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return sent


def backend_of(engine) -> int:
    with engine.connect() as connection:
        return connection.execute(BACKEND).scalar_one()


@contextmanager
def another_client(engine):
    """An engine of its own on the same database, keeping no connection: another client."""
    other = create_engine(engine.url, poolclass=NullPool)
    try:
        yield other
    finally:
        other.dispose()


def end_backend(engine, pid: int) -> None:
    """What a restart or an administrator does to a connection: the server ends it."""
    with another_client(engine) as other:
        with other.connect() as connection:
            assert connection.execute(text("SELECT pg_terminate_backend(:pid)"),
                                      {"pid": pid}).scalar_one()
        # Gone from pg_stat_activity: its process has written its goodbye and closed the socket.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with other.connect() as connection:
                if connection.execute(text("SELECT count(*) FROM pg_stat_activity "
                                           "WHERE pid = :pid"), {"pid": pid}).scalar_one() == 0:
                    return
            time.sleep(0.05)
        raise AssertionError(f"PostgreSQL's backend {pid} did not end within 10 s")


def test_a_connection_used_a_moment_ago_is_not_pinged(engine, pings):
    first = backend_of(engine)
    assert backend_of(engine) == first and backend_of(engine) == first
    assert pings == []


def test_a_connection_the_server_closed_is_replaced_before_use(engine, pings):
    old = backend_of(engine)
    end_backend(engine, old)
    new = backend_of(engine)  # no error: a new connection took its place
    assert new != old
    assert pings == []  # its closed socket said so; no round trip was needed


def test_a_page_after_the_server_closed_the_connection(app, user, engine, sign_in):
    browser = sign_in()
    end_backend(engine, backend_of(engine))
    assert browser.get("/portal").status_code == 200


def test_a_connection_idle_past_the_limit_is_pinged(engine, pings, monkeypatch):
    first = backend_of(engine)
    monkeypatch.setattr(db_setup, "PING_AFTER_IDLE_SECONDS", 0.0)
    assert backend_of(engine) == first
    assert pings == [1]


def test_a_connection_that_fails_its_ping_is_replaced(engine, monkeypatch):
    """A network that dropped the connection silently leaves nothing in its socket; the ping
    after an idle spell finds it out."""
    first = backend_of(engine)
    monkeypatch.setattr(db_setup, "PING_AFTER_IDLE_SECONDS", 0.0)
    dbapi_error = engine.dialect.loaded_dbapi.OperationalError

    def unanswered(_dbapi_connection):
        raise dbapi_error("server closed the connection unexpectedly")

    monkeypatch.setattr(engine.dialect, "do_ping", unanswered)
    with engine.connect() as connection:
        assert connection.execute(BACKEND).scalar_one() != first


def test_sqlite_connections_are_not_pinged(app, monkeypatch):
    """A file a connection has open cannot be dropped by a server: no ping, however idle."""
    with app.app_context():
        engine = db.engine
    if engine.dialect.name != "sqlite":
        pytest.skip("SQLite's own case")
    sent = []
    monkeypatch.setattr(engine.dialect, "do_ping", lambda _connection: sent.append(1))
    monkeypatch.setattr(db_setup, "PING_AFTER_IDLE_SECONDS", 0.0)
    for _ in range(3):
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    assert sent == []


# --- transactions begin at the first write (db_setup.begin_at_first_write) ------------------

def in_transaction(connection) -> bool:
    """Whether PostgreSQL has a transaction open on this SQLAlchemy connection's connection."""
    status = connection.connection.dbapi_connection.info.transaction_status
    return status != connection.dialect.loaded_dbapi.pq.TransactionStatus.IDLE


@contextmanager
def transaction_states(engine):
    """For each transaction SQLAlchemy ends: whether PostgreSQL had one open to end. "idle"
    means nothing was sent for it: no BEGIN before it, no COMMIT or ROLLBACK after."""
    seen: list[str] = []

    def note(connection):
        seen.append("open" if in_transaction(connection) else "idle")

    for kind in ("commit", "rollback"):
        event.listen(engine, kind, note)
    try:
        yield seen
    finally:
        for kind in ("commit", "rollback"):
            event.remove(engine, kind, note)


def test_a_page_that_only_reads_begins_and_ends_no_transaction(app, user, engine, sign_in):
    browser = sign_in()
    with transaction_states(engine) as seen:
        assert browser.get("/portal").status_code == 200  # the session and its user, read
    assert seen and set(seen) == {"idle"}


def test_the_code_pages_poll_begins_and_ends_no_transaction(app, user, engine, smtp, deliver,
                                                          browser):
    request_code(browser, smtp, deliver)
    with transaction_states(engine) as seen:
        assert browser.get("/login/code/status").status_code == 200  # blueprints/fast_path.py
    assert seen and set(seen) == {"idle"}


def test_a_post_that_writes_commits_one_transaction(app, user, engine, smtp, deliver, browser):
    code = request_code(browser, smtp, deliver)
    with transaction_states(engine) as seen:
        assert browser.enter_code(code).status_code == 302
    assert seen.count("open") == 1


def opens_a_transaction(engine, *statements) -> bool:
    """Whether PostgreSQL has a transaction open after these statements, each run on a
    connection just taken from the pool (rolled back after)."""
    with engine.connect() as connection:
        for statement, parameters in statements:
            connection.execute(statement, parameters)
        opened = in_transaction(connection)
        connection.rollback()
    return opened


def test_reads_run_on_their_own_and_a_write_or_lock_begins_the_transaction(app, user, engine):
    read = (select(User.id), {})
    assert not opens_a_transaction(engine, read, read)
    assert not opens_a_transaction(engine, (text("SELECT count(*) FROM users"), {}))
    assert opens_a_transaction(engine, read, (select(User.id).with_for_update(), {}))
    assert opens_a_transaction(engine, (text("SELECT id FROM users FOR NO KEY UPDATE"), {}))
    assert opens_a_transaction(engine, (text("SELECT pg_advisory_xact_lock(:key)"), {"key": 1}))
    assert opens_a_transaction(engine, read, (update(User).values(lockout_count=0), {}))
    assert opens_a_transaction(engine, (text("SET LOCAL statement_timeout = 1000"), {}))


def test_an_advisory_lock_is_held_until_commit(app, user, engine):
    """The sign-in limits serialise on advisory locks (services/signin/limits.py): taken in
    what SQLAlchemy sees as a transaction, they must last until it commits."""
    held = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4243")
    with another_client(engine) as other, engine.connect() as connection, \
            other.connect() as watcher:
        connection.execute(select(User.id))
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": 4243})
        connection.execute(select(User.id))
        assert watcher.execute(held).scalar_one() == 1
        connection.commit()
        assert watcher.execute(held).scalar_one() == 0


def test_a_statement_marked_alone_commits_on_its_own(app, user, engine):
    """The dispatcher's claim (db_setup.ALONE): one round trip, committed at once, where a
    transaction would have sent BEGIN before it and COMMIT after."""
    claim = update(User).where(User.id == user).values(lockout_count=0)
    alone = claim.execution_options(**db_setup.ALONE)
    assert not opens_a_transaction(engine, (alone, {}))
    assert opens_a_transaction(engine, (claim, {}))
    # After another write it belongs to that write's transaction, as any statement does.
    assert opens_a_transaction(engine, (claim, {}), (alone, {}))


def test_the_code_caps_hold_the_account_and_the_address_until_commit(app, user, engine):
    """limits._hold_caps takes both locks in one statement: the account's row and the
    address's advisory lock, held until the transaction ends."""
    from services.signin import limits

    advisory = text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")
    row = text("SELECT id FROM users WHERE id = :user FOR NO KEY UPDATE NOWAIT")
    with another_client(engine) as other, app.app_context(), other.connect() as watcher:
        limits._hold_caps(db.session.get(User, user), "203.0.113.9")
        assert watcher.execute(advisory).scalar_one() == 1
        with pytest.raises(OperationalError, match="could not obtain lock"):
            watcher.execute(row, {"user": user})
        watcher.rollback()
        db.session.commit()
        assert watcher.execute(advisory).scalar_one() == 0
        assert watcher.execute(row, {"user": user}).scalar_one() == user


def _tcp_settings(dbapi_connection) -> dict:
    """The TCP settings of a connection's socket, read from a copy of its descriptor."""
    sock = socket.socket(fileno=os.dup(dbapi_connection.fileno()))
    try:
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            pytest.skip("a Unix socket has no TCP settings")
        tcp = socket.IPPROTO_TCP
        return {"tcp_user_timeout": sock.getsockopt(tcp, socket.TCP_USER_TIMEOUT),
                "keepalives": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
                "keepalives_idle": sock.getsockopt(tcp, socket.TCP_KEEPIDLE),
                "keepalives_interval": sock.getsockopt(tcp, socket.TCP_KEEPINTVL),
                "keepalives_count": sock.getsockopt(tcp, socket.TCP_KEEPCNT)}
    finally:
        sock.close()


def test_a_network_gone_silent_is_given_up_on_within_gunicorns_timeout(engine):
    """A database on another host whose link drops without a reset: a statement sent fails
    after 20 s unacknowledged, and a connection waiting for an answer after 25 s of unanswered
    probes (10 s quiet, then 3 probes 5 s apart), not after the kernel's 15 minutes."""
    with engine.connect() as connection:
        assert _tcp_settings(connection.connection.dbapi_connection) == \
            db_setup.NETWORK_SETTINGS
    user_timeout = db_setup.NETWORK_SETTINGS["tcp_user_timeout"] / 1000
    probing = (db_setup.NETWORK_SETTINGS["keepalives_idle"]
               + db_setup.NETWORK_SETTINGS["keepalives_interval"]
               * db_setup.NETWORK_SETTINGS["keepalives_count"])
    # The idle ping's wait and a new connection's, within the systemd unit's --timeout 60.
    assert user_timeout + db_setup.CONNECT_TIMEOUT_SECONDS < 60 and probing < 60


def test_database_url_settings_win_over_the_defaults(engine):
    url = engine.url.update_query_dict({"tcp_user_timeout": "7000", "keepalives_idle": "42"})
    other = create_engine(url, poolclass=NullPool)
    db_setup.configure_engine(other)
    try:
        with other.connect() as connection:
            settings = _tcp_settings(connection.connection.dbapi_connection)
        assert settings["tcp_user_timeout"] == 7000 and settings["keepalives_idle"] == 42
        assert settings["keepalives_count"] == db_setup.NETWORK_SETTINGS["keepalives_count"]
    finally:
        other.dispose()
