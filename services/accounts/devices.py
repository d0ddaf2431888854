"""Where a client is signed in now, and their recent sign-ins, for /account/devices."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import select, update

from extensions import db
from models import AuthSession, SignIn, User
from services import audit, clock
from services.signin import codes, phone_proofs, sessions
from services.accounts import email_change, tokens
from services.authenticators import trusted_devices
from services.support.timeline import device_words

RECENT_SIGN_INS = 10

# How each sign-in ended, in the client's words.
SIGN_IN_OUTCOMES = {
    "completed": "Signed in",
    "pending": "Waiting for the code",
    "superseded": "Replaced by a newer sign-in",
    "expired": "The code was not entered in time",
    "locked": "Stopped after too many wrong codes",
    "cancelled": "Ended before the code was entered",
}


@dataclass(frozen=True)
class Device:
    """One signed-in browser."""

    session_id: int
    device: str
    ip: Optional[str]
    signed_in_at: datetime
    last_seen_at: datetime
    this_one: bool


@dataclass(frozen=True)
class RecentSignIn:
    at: datetime
    device: str
    ip: Optional[str]
    outcome: str
    ok: bool


def _live_conditions(user_id: int) -> tuple:
    """Sessions of this user that have not been revoked, idled out or run out of time."""
    at = clock.now()
    config = current_app.config
    return (
        AuthSession.user_id == user_id,
        AuthSession.revoked_at.is_(None),
        AuthSession.last_seen_at > at - timedelta(minutes=config["SESSION_IDLE_MINUTES"]),
        AuthSession.created_at > at - timedelta(hours=config["SESSION_ABSOLUTE_HOURS"]),
    )


def signed_in_devices(user: User, current_token: Optional[str]) -> list[Device]:
    """The user's live sessions, this browser first, then the most recently seen."""
    current_hash = sessions.token_hash(current_token) if current_token else None
    rows = db.session.scalars(
        select(AuthSession).where(*_live_conditions(user.id))
        .order_by(AuthSession.last_seen_at.desc(), AuthSession.id.desc())
    ).all()
    devices = [Device(
        session_id=row.id, device=device_words(row.user_agent), ip=row.ip,
        signed_in_at=row.created_at, last_seen_at=row.last_seen_at,
        this_one=row.token_hash == current_hash,
    ) for row in rows]
    return sorted(devices, key=lambda d: not d.this_one)


def recent_sign_ins(user: User, limit: int = RECENT_SIGN_INS) -> list[RecentSignIn]:
    """The user's newest sign-ins, whatever became of them."""
    rows = db.session.execute(
        select(SignIn.created_at, SignIn.status, SignIn.ip, SignIn.user_agent)
        .where(SignIn.user_id == user.id)
        .order_by(SignIn.created_at.desc(), SignIn.id.desc()).limit(limit)
    ).all()
    return [RecentSignIn(
        at=row.created_at, device=device_words(row.user_agent), ip=row.ip,
        outcome=SIGN_IN_OUTCOMES.get(row.status, row.status), ok=row.status == "completed",
    ) for row in rows]


@dataclass(frozen=True)
class SignedOut:
    """What "sign out everywhere else" ended."""

    ended: int  # sessions, sign-ins waiting for a code, and marks of trusted devices
    email_change: bool  # a new sign-in email waiting for its link to be used
    phone_proof: bool  # a new mobile number waiting for its code

    @property
    def anything(self) -> bool:
        return bool(self.ended) or self.email_change or self.phone_proof


def pending_email_change(user: User) -> Optional[str]:
    """The new sign-in email waiting for its link to be used, if there is one."""
    row = email_change.waiting(user)
    return row.new_email if row is not None else None


def sign_out_device(user: User, session_id: int, current_token: Optional[str]) -> bool:
    """End one other live session of the user, the one the devices page lists as
    `session_id`; False when there is none such (this browser's own, someone else's, or one
    already over). The caller commits."""
    current_hash = sessions.token_hash(current_token) if current_token else None
    ended = db.session.execute(
        update(AuthSession)
        .where(AuthSession.id == session_id, *_live_conditions(user.id),
               AuthSession.token_hash != current_hash)
        .values(revoked_at=clock.now())
    ).rowcount
    if ended:
        audit.record("signed_out_device", user_id=user.id, detail={"session_id": session_id})
    return bool(ended)


def sign_out_everywhere_else(user: User, current_token: Optional[str],
                             current_mark: Optional[str] = None) -> SignedOut:
    """End every other session of the user, any sign-in waiting for a code, and the marks of
    other devices trusted to skip the code (this browser's, `current_mark`, stays); the
    caller commits. Without that, someone with the password and a marked browser would be
    straight back in without a code.

    Changes begun in a session that may be someone else's end too: a link to move the sign-in
    email (it needs no session, so whoever asked could still take the account with it), and a
    new mobile number waiting for its code.
    """
    ended = sessions.revoke_live(user.id, keep_token=current_token)
    ended += codes.end_pending_sign_ins(user, by="client")
    ended += trusted_devices.forget_all(user.id, "signed out elsewhere", keep_mark=current_mark)
    change_stopped = pending_email_change(user) is not None
    tokens.revoke(user, "email")
    phone_proof = phone_proofs.cancel_proof(user) is not None
    audit.record("signed_out_elsewhere", user_id=user.id,
                 detail={"ended": ended, "email_change_stopped": change_stopped,
                         "phone_proof_stopped": phone_proof})
    return SignedOut(ended, change_stopped, phone_proof)
