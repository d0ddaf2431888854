"""Trusted devices: "don't ask for a code on this device for 30 days".

A client who ticks `remember` on the code page gets a random token in a cookie of its own
(HttpOnly, SameSite=Lax, Secure and __Host- in production); the database keeps only its hash,
the account it belongs to and the browser and system it was set in. On that device, the
password is still asked, and then the code is skipped while the mark is good. A mark is
refused (and the refusal recorded, with why) when it is unknown, expired or forgotten, belongs
to another account, or comes from another kind of browser than the one it was set in.
Changing the password or email, staff action and deactivation forget every mark (forget_all).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import select, update

from extensions import db
from models import TrustedDevice, User
from services import audit, clock, urls
from services.authenticators import sign_ins

LIFETIME = timedelta(days=30)
# RFC 8176: only the password was proved at this sign-in. The second factor was proved on
# this device up to 30 days earlier; the mark is a bearer token, not a key, so no "mfa".
AMR = ["pwd"]
# Marks kept per account; the oldest goes when a new one would pass this.
MAX_PER_USER = 20

# Why a mark was refused (the audit trail's outcome, and the support console's words).
REFUSALS = {
    "unknown": "the device's mark is not one we know (perhaps from an older database)",
    "other_account": "the mark on this device belongs to another account",
    "expired": "the 30 days were over",
    "forgotten": "the mark had been forgotten",
    "other_browser": "the mark came from a different browser than the one it was set in",
}


def cookie_name() -> str:
    """"__Host-cg-device" where cookies are Secure: only this host, over HTTPS, may set it."""
    return "__Host-cg-device" if current_app.config["SESSION_COOKIE_SECURE"] else "cg-device"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def browser_of(user_agent: Optional[str]) -> str:
    """"Chrome|Linux": the kind of browser and system, which stay the same through updates."""
    import user_agents

    if not user_agent:
        return ""
    parsed = user_agents.parse(user_agent)
    return f"{parsed.browser.family}|{parsed.os.family}"[:120]


def mark(user: User, sign_in_id: Optional[int] = None) -> str:
    """Trust this browser for LIFETIME; returns the token for the cookie."""
    at = clock.now()
    token = secrets.token_urlsafe(32)
    agent = audit.client_agent()
    device = TrustedDevice(
        user_id=user.id, token_hash=_hash(token), created_at=at, expires_at=at + LIFETIME,
        ip=audit.client_ip(), user_agent=agent, browser=browser_of(agent),
    )
    db.session.add(device)
    db.session.flush()
    live = list(db.session.scalars(
        select(TrustedDevice).where(TrustedDevice.user_id == user.id,
                                    TrustedDevice.ended_at.is_(None))
        .order_by(TrustedDevice.created_at.desc(), TrustedDevice.id.desc())))
    for old in live[MAX_PER_USER:]:
        _end(old, "replaced")
    audit.record("device_trusted", user_id=user.id, sign_in_id=sign_in_id,
                 detail={"device_id": device.id, "until": device.expires_at.isoformat()})
    return token


def notice(user_agent: Optional[str]) -> str:
    """The sentence of the emailed note that a browser was trusted."""
    from services.support.timeline import device_words

    until = clock.local(clock.now() + LIFETIME, current_app.config["PORTAL_TIMEZONE"])
    return (f"“Don't ask for a code on this device” was ticked at a sign-in, so this browser "
            f"will not be asked for a code after your password until {until:%-d %B %Y}: "
            f"{device_words(user_agent)}. You can stop this on your devices page: "
            f"{urls.absolute_url('devices.index')}")


def set_cookie(response, token: str) -> None:
    response.set_cookie(
        cookie_name(), token, max_age=int(LIFETIME.total_seconds()), path="/",
        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True, samesite="Lax",
    )


@dataclass
class Recognition:
    ok: bool
    device: Optional[TrustedDevice] = None
    reason: str = ""  # a key of REFUSALS, or "none" when the browser had no mark


def recognise(user: User, token: Optional[str]) -> Recognition:
    """After the right password: may this browser skip the code? Records use and refusals."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return Recognition(False, reason="none")
    device = db.session.scalar(
        select(TrustedDevice).where(TrustedDevice.token_hash == _hash(token)))
    at = clock.now()
    if device is None:
        reason = "unknown"
    elif device.user_id != user.id:
        reason = "other_account"
    elif device.ended_at is not None:
        reason = "forgotten"
    elif device.expires_at <= at:
        reason = "expired"
    elif device.browser != browser_of(audit.client_agent()):
        reason = "other_browser"
    else:
        device.last_used_at = at
        return Recognition(True, device)
    audit.record("trusted_device_refused", user_id=user.id, outcome=reason,
                 detail={"device_id": device.id if device is not None
                         and device.user_id == user.id else None,
                         "reason": REFUSALS[reason],
                         **({"end_reason": device.end_reason} if reason == "forgotten"
                            and device is not None and device.user_id == user.id else {})})
    return Recognition(False, device if device is not None and device.user_id == user.id
                       else None, reason)


def _end(device: TrustedDevice, reason: str) -> None:
    device.ended_at = clock.now()
    device.end_reason = reason[:32]


def devices_of(user: User) -> list[TrustedDevice]:
    """The user's marks still in force, newest first."""
    return list(db.session.scalars(
        select(TrustedDevice).where(
            TrustedDevice.user_id == user.id, TrustedDevice.ended_at.is_(None),
            TrustedDevice.expires_at > clock.now())
        .order_by(TrustedDevice.created_at.desc(), TrustedDevice.id.desc())))


def forget(user: User, device_id: int, *,
           keep_token: Optional[str] = None) -> Optional[TrustedDevice]:
    """The client's "forget this device" (another user's id finds nothing); the sessions it
    opened end too, but the one with `keep_token`."""
    device = db.session.scalar(select(TrustedDevice).where(
        TrustedDevice.id == device_id, TrustedDevice.user_id == user.id,
        TrustedDevice.ended_at.is_(None)))
    if device is None:
        return None
    _end(device, "client")
    ended = sign_ins.end_sessions_opened_by(user.id, "trusted_device_used", "device_id",
                                            device.id, keep_token=keep_token)
    audit.record("device_forgotten", user_id=user.id,
                 detail={"device_id": device.id, "reason": "client", "sessions_ended": ended})
    return device


def forget_all(user_id: int, reason: str, *, keep_mark: Optional[str] = None) -> int:
    """Forget every device mark of a user (password or email change, staff action,
    deactivation) but this browser's `keep_mark`, if given; the caller commits. Returns how
    many were forgotten."""
    forgetting = [TrustedDevice.user_id == user_id, TrustedDevice.ended_at.is_(None)]
    if keep_mark:
        forgetting.append(TrustedDevice.token_hash != _hash(keep_mark))
    result = db.session.execute(
        update(TrustedDevice).where(*forgetting)
        .values(ended_at=clock.now(), end_reason=reason[:32])
    )
    count = result.rowcount or 0
    if count:
        audit.record("devices_forgotten", user_id=user_id,
                     detail={"count": count, "reason": reason})
    return count
