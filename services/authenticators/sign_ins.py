"""A sign-in that needed no code (a passkey, or a password on a trusted device), on record.

It is a SignIn row like any other, completed at once, so the support console's timeline and
diagnosis tell it alongside the code sign-ins; its channel says how it was done.
"""

from __future__ import annotations

from typing import Optional

from extensions import db
from models import SignIn, User
from services import audit, clock

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
    return sign_in
