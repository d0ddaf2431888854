"""Engine settings: SQLite made fit for several workers (WAL, a busy timeout, foreign keys), and
a database server's pooled connections checked before use, cheaply.

How SQLite transactions begin, and why. A transaction that reads and later writes can fail at
once with "database is locked" (SQLITE_BUSY_SNAPSHOT in WAL mode: another worker wrote after
our read, and no amount of waiting helps). So a transaction here begins with BEGIN IMMEDIATE,
which takes the write lock up front and waits for it up to the busy timeout, right before the
first statement that writes or that asks for a lock (SELECT ... FOR UPDATE, as on PostgreSQL).
Plain reads before that run outside any transaction: they never block, are never blocked (WAL),
and never hold a snapshot that could go stale. Code that must read and then write atomically
locks first with `with_for_update()`, which locks the row on PostgreSQL and takes the write
lock on SQLite. (Beginning every transaction with BEGIN IMMEDIATE would also be correct, but
then every reader queues behind every writer and an idle session holds up the whole site.)

PostgreSQL follows the same rule (`begin_at_first_write`): reads before the first write or lock
run on their own, and a transaction begins right before that statement. At PostgreSQL's READ
COMMITTED level each statement sees the database as of its own start even inside a
transaction, so this changes nothing a read sees; it saves a request that only reads its BEGIN
and its ROLLBACK, two round trips (issue 16).
"""

from __future__ import annotations

import hashlib
import re
import select
import sqlite3
import time

from sqlalchemy import event, literal, text
from sqlalchemy import select as select_statement
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DBAPIError, DisconnectionError, InterfaceError, OperationalError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

SQLITE_BUSY_TIMEOUT_MS = 15000
_WRITES = {"INSERT", "UPDATE", "DELETE", "REPLACE"}


def _takes_write_lock(context, statement: str) -> bool:
    """True for a write, or for a read that asked for a lock (SELECT ... FOR UPDATE)."""
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        if getattr(compiled.statement, "_for_update_arg", None) is not None:
            return True  # SQLite's compiler drops FOR UPDATE from the text, so ask the statement
        if context.isinsert or context.isupdate or context.isdelete:
            return True
    words = statement.lstrip().split(None, 1)
    return bool(words) and words[0].upper() in _WRITES


# A PostgreSQL SELECT written as text that locks: a row lock, or an advisory lock (held until
# the transaction ends, so it needs one). Core and ORM statements say so on the statement.
_LOCKS = re.compile(r"\bFOR\s+(?:NO\s+KEY\s+UPDATE|UPDATE|KEY\s+SHARE|SHARE)\b", re.IGNORECASE)
_NOT_A_SELECT = object()


def _plain_read(context, statement: str) -> bool:
    """True for a SELECT that locks nothing; anything else (writes, DDL, SET, SAVEPOINT)
    belongs in a transaction."""
    if "pg_advisory" in statement:
        return False
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        lock = getattr(compiled.statement, "_for_update_arg", _NOT_A_SELECT)
        if lock is not _NOT_A_SELECT:  # a Core or ORM SELECT
            return lock is None
    return statement.lstrip()[:6].upper() == "SELECT" and not _LOCKS.search(statement)


def hold_named_lock(executor, name: str) -> None:
    """Hold a lock called `name` until the transaction ends, for work with no row to lock yet
    (the first signing key, the first note of something, a database's migrations). On
    PostgreSQL an advisory lock keyed by the name's hash, so work under other names goes on;
    on SQLite a locking read, which takes the database's write lock (above). `executor`: a
    Session or a Connection."""
    bind = executor if isinstance(executor, Connection) else executor.get_bind()
    if bind.dialect.name == "postgresql":
        key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
        executor.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": key})
    else:
        executor.execute(select_statement(literal(1)).with_for_update())


# A pooled connection unused for this long is pinged (one round trip) before it is used again.
PING_AFTER_IDLE_SECONDS = 5.0


def configure_engine(engine: Engine) -> None:
    """Apply per-connection settings for the engine's database."""
    if getattr(engine, "_clientgate_configured", False):
        return
    engine._clientgate_configured = True
    if engine.dialect.name == "sqlite":
        _configure_sqlite(engine)
        return
    check_before_use(engine)
    if engine.dialect.name == "postgresql":
        begin_at_first_write(engine)
        give_up_connecting_after(engine, CONNECT_TIMEOUT_SECONDS)


# A database server that takes the connection but never answers (hung, or a failover's address
# whose packets go nowhere) held each request, and the dispatcher, for good: a worker until
# gunicorn killed it, then the next. After this long the page says to try again in a minute.
CONNECT_TIMEOUT_SECONDS = 5
# A connection whose network goes silent (a database server on another host, its link or host
# gone without a reset) waited for the kernel to give up: about 15 minutes of retransmissions
# (tcp_retries2) for a statement sent, for ever for an answer awaited. Each is given up sooner,
# well within gunicorn's 60 s timeout, so the request gets the "try again" page and the
# dispatcher's next round a new connection (libpq's TCP settings, kept for the connection's
# life; a Unix socket ignores them):
# - a statement the server's host has not acknowledged within 20 s fails (TCP_USER_TIMEOUT);
# - a connection that has heard nothing for 10 s is probed every 5 s, and after 3 unanswered
#   probes fails. A slow statement is not cut short: the server's kernel answers the probes.
NETWORK_SETTINGS = {"tcp_user_timeout": 20_000, "keepalives": 1, "keepalives_idle": 10,
                    "keepalives_interval": 5, "keepalives_count": 3}


def give_up_connecting_after(engine: Engine, seconds: int) -> None:
    """libpq's connect_timeout and NETWORK_SETTINGS for each new connection, each unless
    DATABASE_URL sets its own."""

    @event.listens_for(engine, "do_connect")
    def _connect_timeout(_dialect, _record, _cargs, cparams) -> None:
        cparams.setdefault("connect_timeout", seconds)
        for name, value in NETWORK_SETTINGS.items():
            cparams.setdefault(name, value)


# Execution options for a write that is a transaction of its own: one atomic statement whose
# caller commits right after it (the dispatcher's claim of a message). Run first on a
# PostgreSQL connection, it goes in autocommit: one round trip, not BEGIN, it and COMMIT.
# After another write in the same transaction it is part of that transaction, as any other.
ALONE_OPTION = "clientgate_alone"
ALONE = {ALONE_OPTION: True}


def begin_at_first_write(engine: Engine) -> None:
    """PostgreSQL's connections read in autocommit until a statement needs a transaction.

    psycopg sends BEGIN as a round trip of its own before a transaction's first statement, and
    SQLAlchemy ends every transaction with COMMIT or ROLLBACK, even one that only read: the
    code page, the portal, the dispatcher's look at a message before it sends, and the fast
    paths' one read (blueprints/fast_path.py), each 2 round trips of 3 or 4. And psycopg
    forgets its prepared statements at every ROLLBACK, so with a read-only page in every few
    requests none lived to be used. Here a connection leaves the
    pool in autocommit; the first statement that is not a plain read (see `_plain_read`) turns
    autocommit off, so psycopg begins a real transaction right before it, which ends as usual.
    A transaction that only read ends with nothing to send: psycopg's commit() and rollback()
    do nothing on a connection with no transaction open. Code that must read and then write
    atomically locks first, as for SQLite (the module's docstring), and a lock begins the
    transaction. A statement marked `ALONE` stays in autocommit. A connection used again in
    the same checkout after a write stays out of autocommit: its next transaction begins at its
    first statement, as before.

    The check runs from the dialect's execute methods (`before_each_statement`).
    """
    dialect = engine.dialect
    idle = dialect.loaded_dbapi.pq.TransactionStatus.IDLE

    @event.listens_for(engine.pool, "checkout")
    def _read_on_their_own(dbapi_connection, _record, _proxy) -> None:
        # Not on a connection that is broken or (somehow) mid-transaction: setting autocommit
        # would raise, where its first statement raises the error SQLAlchemy knows.
        if not dbapi_connection.autocommit and dbapi_connection.info.transaction_status == idle:
            dbapi_connection.autocommit = True

    def begin_before_write(cursor, statement: str, context) -> None:
        connection = cursor.connection
        if (connection.autocommit and not _plain_read(context, statement)
                and connection.info.transaction_status == idle
                and not (context is not None and context.execution_options.get(ALONE_OPTION))):
            connection.autocommit = False

    before_each_statement(engine, begin_before_write)


def before_each_statement(engine: Engine, check) -> None:
    """Call `check(cursor, statement, context)` before each statement this engine sends, from
    its dialect's execute methods (each engine has a dialect of its own).

    Not a before_cursor_execute listener: any listener of SQLAlchemy's connection events puts
    every statement of the engine on a slower path, which costs more than what these checks
    save (counted with bench/instructions.py)."""
    dialect = engine.dialect
    execute, execute_many, execute_bare = (
        dialect.do_execute, dialect.do_executemany, dialect.do_execute_no_params)

    def do_execute(cursor, statement, parameters, context=None):
        check(cursor, statement, context)
        return execute(cursor, statement, parameters, context)

    def do_executemany(cursor, statement, parameters, context=None):
        check(cursor, statement, context)
        return execute_many(cursor, statement, parameters, context)

    def do_execute_no_params(cursor, statement, context=None):
        check(cursor, statement, context)
        return execute_bare(cursor, statement, context)

    dialect.do_execute = do_execute
    dialect.do_executemany = do_executemany
    dialect.do_execute_no_params = do_execute_no_params


def check_before_use(engine: Engine) -> None:
    """Hand out no pooled connection the server has dropped, without a round trip per use.

    SQLAlchemy's pool_pre_ping sends a query before every use: 8 round trips a sign-in on
    PostgreSQL, each 65 us of a worker's CPU and some of the server's (issue 16; this check
    costs 5-10 us). Instead, at checkout:
    - a connection the server has written to while it sat in the pool is replaced. Between
      transactions a server says nothing unless it is closing the connection (a restart, an
      administrator's pg_terminate_backend, an idle timeout), so its goodbye is waiting in the
      socket: one poll(), no round trip, catches those;
    - a connection unused for PING_AFTER_IDLE_SECONDS is pinged as pre-ping would: a network
      that dropped it silently (a firewall, a host gone) leaves nothing in the socket.
    Under load connections are reused within milliseconds and never pinged; when idle, each
    use is pinged as before. A replaced connection is a new one, and the request goes on.
    """
    dialect = engine.dialect

    @event.listens_for(engine.pool, "checkin")
    def _note_idle(_dbapi_connection, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _check(dbapi_connection, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None:
            return  # new, or not yet given back: nothing can have happened to it in the pool
        if _server_has_spoken(dbapi_connection, dialect.loaded_dbapi.Error):
            raise DisconnectionError("the database server closed this connection")
        if time.monotonic() - idle_since >= PING_AFTER_IDLE_SECONDS:
            try:
                dialect.do_ping(dbapi_connection)
                dbapi_connection.rollback()  # the ping's transaction: leave none open
            except dialect.loaded_dbapi.Error as exc:
                raise DisconnectionError("the database server did not answer a ping") from exc


def _server_has_spoken(dbapi_connection, dbapi_error: type[Exception]) -> bool:
    """Whether an idle connection's socket has something to read, or the driver knows it is
    closed. A driver without fileno() says False here, and the idle ping is the check."""
    try:
        descriptor = dbapi_connection.fileno()
    except dbapi_error:
        return True
    except AttributeError:
        return False
    poller = select.poll()
    poller.register(descriptor, select.POLLIN)
    return bool(poller.poll(0))


def _configure_sqlite(engine: Engine) -> None:
    in_memory = engine.url.database in (None, "", ":memory:")

    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_connection, _record) -> None:
        # We, not the sqlite3 module, say when a transaction begins (see below).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        if not in_memory:
            cursor.execute("PRAGMA journal_mode = WAL")
            cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()

    def begin_immediate(cursor, statement: str, context) -> None:
        if not cursor.connection.in_transaction and _takes_write_lock(context, statement):
            cursor.execute("BEGIN IMMEDIATE")

    before_each_statement(engine, begin_immediate)


def database_away(error: BaseException) -> bool:
    """Whether `error` says the database cannot be reached or used just now, not that this
    request did something wrong: PostgreSQL restarting, failing over, refusing connections or
    ending ours (pg_terminate_backend), the pool's wait for a connection running out, or SQLite's
    write lock held past the busy timeout (a backup, a `sqlite3` shell in BEGIN IMMEDIATE).
    Trying again in a minute is the cure for each."""
    if isinstance(error, (DisconnectionError, PoolTimeout)):
        return True
    if not isinstance(error, DBAPIError):
        return False
    if error.connection_invalidated or isinstance(error, InterfaceError):
        return True
    if not isinstance(error, OperationalError):
        return False
    if isinstance(error.orig, sqlite3.Error):
        # SQLite's OperationalError is also "no such table": only a lock is passing trouble.
        return "locked" in str(error.orig) or "busy" in str(error.orig)
    # psycopg's: connection refused or lost, shutting down, starting up, too many clients. Not
    # a deadlock or a serialization failure (class 40): those are this code's to fix, and must
    # stay errors with their traceback.
    return not (getattr(error.orig, "sqlstate", None) or "").startswith("40")
