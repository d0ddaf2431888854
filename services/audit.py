"""The audit trail: one Event row per thing that happened. Never a code's digits."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Optional

from flask import has_request_context, request
from sqlalchemy import event

from extensions import db
from models import Event
from services import clock

log = logging.getLogger("clientgate.audit")


def clip(value: Optional[str], size: int) -> Optional[str]:
    """Cut a client-supplied string to fit its column."""
    if value is None:
        return None
    return value[:size]


def client_ip() -> Optional[str]:
    """The client's address as this app sees it (ProxyFix decides whom to trust)."""
    return clip(request.remote_addr, 64) if has_request_context() else None


def client_agent() -> Optional[str]:
    return clip(request.headers.get("User-Agent"), 512) if has_request_context() else None


def record(
    type: str,
    *,
    user_id: Optional[int] = None,
    sign_in_id: Optional[int] = None,
    delivery_id: Optional[int] = None,
    actor_id: Optional[int] = None,
    outcome: Optional[str] = None,
    detail: Optional[dict[str, Any]] = None,
) -> None:
    """Write an event in this transaction (the caller commits), with this request's IP and browser.

    One plain INSERT, written at once: the trail is the most written table (six rows a
    sign-in), and the ORM's unit of work would cost several times the statement itself.
    Inside `written_together` it waits to go with the block's others in one statement.
    Everything an event points at (user, sign-in, message) has its id already, so is in the
    database; a rollback takes the event back with the rest.
    """
    ip = client_ip()
    row = {
        "created_at": clock.now(), "type": type, "user_id": user_id, "sign_in_id": sign_in_id,
        "delivery_id": delivery_id, "actor_id": actor_id, "outcome": outcome, "ip": ip,
        "user_agent": client_agent(), "detail": detail or {},
    }
    session = db.session()
    waiting = session.info.get(_WAITING)
    if waiting is not None:
        if not session.in_transaction():
            session.begin()  # a transaction for its rollback to end, before any statement
        waiting.append(row)
    else:
        session.connection().execute(_INSERT, row)
    log.info(
        "event=%s user=%s sign_in=%s delivery=%s actor=%s outcome=%s ip=%s",
        type, user_id, sign_in_id, delivery_id, actor_id, outcome or "-", ip or "-",
    )


_INSERT = Event.__table__.insert()
_WAITING = "audit_events_waiting"


@contextmanager
def written_together() -> Iterator[None]:
    """Events recorded inside the block are written together, in one statement for all the
    rows, when the block ends or when the transaction commits, whichever comes first.

    A password post that sends a code records three events and a right code two; on
    PostgreSQL each INSERT is a round trip of its own. Only for steps that read no events
    after recording one: the lockout and the code caps count events, and inside the block
    they would not see those still waiting. A rollback drops the waiting events with the
    rest of the transaction, as it would have taken them back once written."""
    info = db.session.info
    if _WAITING in info:  # inside another such block: that one writes them
        yield
        return
    info[_WAITING] = []
    try:
        yield
        _write_waiting(db.session())
    finally:
        info.pop(_WAITING, None)


def _write_waiting(session) -> None:
    waiting = session.info.get(_WAITING)
    if waiting:
        rows = waiting[:]
        waiting.clear()
        # One statement for several rows (the DB-API's executemany): SQLite runs it in the
        # process; psycopg sends the rows together and waits once. (An INSERT of several
        # VALUES would be one statement too, but SQLAlchemy compiles one afresh every time.)
        session.connection().execute(_INSERT, rows)


@event.listens_for(db.session, "before_commit")
def _write_before_commit(session) -> None:
    _write_waiting(session)


@event.listens_for(db.session, "after_soft_rollback")
def _drop_on_rollback(session, _previous_transaction) -> None:
    waiting = session.info.get(_WAITING)
    if waiting:
        waiting.clear()
