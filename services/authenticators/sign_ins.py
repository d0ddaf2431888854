"""A sign-in that needed no code (a passkey, or a password on a trusted device), on record.

It is a SignIn row like any other, completed at once, so the support console's timeline and
diagnosis tell it alongside the code sign-ins; its channel says how it was done.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import select

from extensions import db
from models import AuthSession, Event, SignIn, User
from services import audit, clock
from services.signin import codes, sessions

# SignIn.channel of sign-ins that sent no code.
PASSKEY, DEVICE = "passkey", "device"


def record_codeless(user: User, channel: str, described: str, *,
                    next_url: Optional[str] = None) -> SignIn:
    """A completed sign-in by `channel` ("passkey", "device"); `described` names what was used."""
    at = clock.now()
    sign_in = SignIn(
        user_id=user.id, created_at=at, status="completed", ended_at=at, channel=channel,
        destination=described[:254], code_hash="", expires_at=at,
        ip=audit.client_ip(), user_agent=audit.client_agent(), next_url=next_url,
    )
    db.session.add(sign_in)
    db.session.flush()
    # It ends the user's sign-ins still waiting for a code, as a code's success does: the
    # lockout counts wrong codes only on sign-ins begun since the last success, so one left
    # waiting would take five wrong codes uncounted.
    codes.end_pending_sign_ins(user, by=channel)
    return sign_in


def end_sessions_opened_by(user_id: int, used_event: str, detail_key: str, value: int, *,
                           keep_token: Optional[str] = None) -> int:
    """End the live sessions that one passkey or trusted device opened, when the client
    removes it (someone else's key or browser is usually why), except the session with
    `keep_token`, where the client is removing it. Which sign-ins it made is in the audit
    trail (`used_event` with its id under `detail_key`), read back only as far as a session
    can last. Returns how many ended; the caller commits."""
    since = clock.now() - timedelta(hours=current_app.config["SESSION_ABSOLUTE_HOURS"])
    used = db.session.execute(
        select(Event.sign_in_id, Event.detail)
        .where(Event.user_id == user_id, Event.created_at >= since, Event.type == used_event)
    ).all()
    sign_in_ids = [row.sign_in_id for row in used
                   if row.sign_in_id is not None and (row.detail or {}).get(detail_key) == value]
    if not sign_in_ids:
        return 0
    return sessions.revoke_live(user_id, AuthSession.sign_in_id.in_(sign_in_ids),
                                keep_token=keep_token)
