"""Engine settings that make SQLite fit for several workers: WAL, a busy timeout, foreign keys.

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
"""

from __future__ import annotations

from sqlalchemy import event
from sqlalchemy.engine import Engine

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


def configure_engine(engine: Engine) -> None:
    """Apply per-connection settings for the engine's database."""
    if engine.dialect.name != "sqlite" or getattr(engine, "_clientgate_configured", False):
        return
    engine._clientgate_configured = True
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

    @event.listens_for(engine, "before_cursor_execute")
    def _begin_immediate(_conn, cursor, statement, _parameters, context, _executemany) -> None:
        if not cursor.connection.in_transaction and _takes_write_lock(context, statement):
            cursor.execute("BEGIN IMMEDIATE")
