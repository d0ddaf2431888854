"""The audit trail: one Event row per thing that happened. Never a code's digits."""

from __future__ import annotations

import logging
from typing import Any, Optional

from flask import has_request_context, request

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
    Everything an event points at (user, sign-in, message) has its id already, so is in the
    database; a rollback takes the event back with the rest.
    """
    ip = client_ip()
    db.session.connection().execute(_INSERT, {
        "created_at": clock.now(), "type": type, "user_id": user_id, "sign_in_id": sign_in_id,
        "delivery_id": delivery_id, "actor_id": actor_id, "outcome": outcome, "ip": ip,
        "user_agent": client_agent(), "detail": detail or {},
    })
    log.info(
        "event=%s user=%s sign_in=%s delivery=%s actor=%s outcome=%s ip=%s",
        type, user_id, sign_in_id, delivery_id, actor_id, outcome or "-", ip or "-",
    )


_INSERT = Event.__table__.insert()
