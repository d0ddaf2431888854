"""A SQLite database held by another process for longer than the busy timeout (a stuck
`sqlite3` session, a long backup): the message says it is busy, not that it is missing."""

from __future__ import annotations

import sqlite3

from sqlalchemy.exc import OperationalError

from cli import database_problem


def test_a_locked_sqlite_database_is_called_busy_not_unreachable():
    error = OperationalError("INSERT INTO users ...", {},
                             sqlite3.OperationalError("database is locked"))
    message = database_problem(error, "sqlite:////var/lib/clientgate/clientgate.db")
    assert message.startswith("The database at sqlite:////var/lib/clientgate/clientgate.db "
                              "is busy"), message
    assert "Try again" in message
    assert "folder exists" not in message and "Cannot reach" not in message
