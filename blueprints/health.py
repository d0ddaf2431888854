"""Health check for load balancers and monitoring: the database, the dispatcher, the queue."""

from __future__ import annotations

import hmac
import ipaddress
import logging

from flask import Blueprint, current_app, request
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from extensions import db, limiter
from models import Delivery, DispatcherBeat
from services import clock, delivery

bp = Blueprint("health", __name__)
log = logging.getLogger("clientgate.health")

# Dispatchers beat every 10 s; one that missed three beats is taken for dead.
BEAT_FRESH = delivery.HEARTBEAT_EVERY * 3


@bp.route("/healthz")
def healthz():
    """200 with {"status": "ok"} when the database answers, 503 when it does not.

    To a request from this machine, or one with the HEALTHZ_TOKEN, it also says whether a
    delivery dispatcher is alive, how many messages wait and which settings are missing, so a
    monitor can alert on codes that are not going out; those never turn the answer into a 503.
    Anyone else learns only the status: worker counts and settings are nobody else's business.
    """
    try:
        db.session.execute(text("SELECT 1"))
    except Exception as error:  # any database failure means "not healthy", never a 500 page
        db.session.rollback()
        # The monitor sees only "unreachable"; the operator it alerts finds why in the log.
        why = (str(error).strip().splitlines() or [""])[0][:300]
        log.warning("healthz: the database did not answer (%s: %s)", type(error).__name__, why)
        return {"status": "error", "database": "unreachable"}, 503
    if not may_see_details():
        return {"status": "ok"}
    return {"status": "ok", "database": "ok", **delivery_health(),
            "limits": limits_health(), "missing": delivery.missing_settings()}


def limits_health() -> dict:
    """Where the request limits are counted and, with Redis, whether it answers now. A worker
    whose Redis does not answer counts in its own memory (so limits are looser by the number
    of workers) until it does: a monitor should alert on "reachable": false."""
    if current_app.config.get("RATELIMIT_STORAGE_URI", "memory://").startswith("memory://"):
        return {"storage": "memory"}
    try:
        reachable = bool(limiter.storage.check())  # one PING, 0.5 s at most
    except Exception:  # a wrong password or host in the URI: not reachable, never a 500
        reachable = False
    return {"storage": "redis", "reachable": reachable}


def may_see_details() -> bool:
    """A direct request from this machine (not one relayed by a proxy), or the token."""
    token = current_app.config.get("HEALTHZ_TOKEN")
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    return from_this_machine()


# Headers a proxy or tunnel (nginx, Caddy, ngrok, cloudflared) adds for the browser it relays.
RELAYED = ("X-Forwarded-For", "X-Real-IP", "Forwarded")


def from_this_machine() -> bool:
    """A request made on this machine itself: from a loopback address, and not relayed by
    a proxy or tunnel running here (whose connections also come from loopback)."""
    if any(name in request.headers for name in RELAYED):
        return False  # relayed by a proxy on this machine: the asker is somewhere else
    try:
        return ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        return False


def _seconds_since(moment) -> int | None:
    return None if moment is None else max(0, int((clock.now() - moment).total_seconds()))


def delivery_health() -> dict:
    """Live dispatchers (a heartbeat in the last 30 s) and the messages waiting to be sent."""
    try:
        at = clock.now()
        workers = db.session.scalar(
            select(func.count()).select_from(DispatcherBeat)
            .where(DispatcherBeat.beat_at >= at - BEAT_FRESH)
        ) or 0
        last_beat = db.session.scalar(select(func.max(DispatcherBeat.beat_at)))
        oldest = db.session.scalar(
            select(func.min(Delivery.created_at))
            .where(Delivery.status.in_(("queued", "sending")))
        )
        waiting = delivery.pending_count()
    except SQLAlchemyError:  # e.g. the schema is not there yet: `flask db upgrade` first
        db.session.rollback()
        return {"dispatcher": {"alive": None}, "queue": {"waiting": None},
                "detail": "the tables could not be read; has `flask db upgrade` been run?"}
    return {
        "dispatcher": {"alive": workers > 0, "workers": workers,
                       "last_beat_seconds_ago": _seconds_since(last_beat)},
        "queue": {"waiting": waiting, "oldest_waiting_seconds": _seconds_since(oldest)},
    }
