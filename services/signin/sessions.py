"""Signed-in browsers, kept on the server so that logout really ends them.

The session cookie carries a random token; the database keeps only its hash. A session
ends at logout, after SESSION_IDLE_MINUTES without a request, or SESSION_ABSOLUTE_HOURS
after sign-in, whichever comes first.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import joinedload

from extensions import db
from models import AuthSession, User
from services import audit, clock

# Writing last_seen_at on every request would make every page a write; a minute is enough.
TOUCH_EVERY = timedelta(seconds=60)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_hash(token: str) -> str:
    """What the database keeps of a session token (to tell "this browser" among the rows)."""
    return _hash(token)


# RFC 8176 method names for a sign-in with a password and a code sent by each channel.
CODE_AMR = {"email": ["pwd", "otp", "mfa"], "sms": ["pwd", "sms", "mfa"],
            # An authenticator app's code is a one-time password too (RFC 6238).
            "totp": ["pwd", "otp", "mfa"]}


def open_session(user: User, sign_in_id: Optional[int] = None,
                 amr: Optional[list[str]] = None) -> str:
    """Start a server-side session for the user; returns the token for the cookie.

    `amr` names how the client proved who they are (RFC 8176), e.g. ["pwd", "otp", "mfa"].
    One plain INSERT in this transaction (the caller commits), as audit.record writes its
    rows: it is on the path of every sign-in, and nothing here needs the row as an object.
    """
    token = secrets.token_urlsafe(32)
    at = clock.now()
    db.session.connection().execute(_INSERT, {
        "token_hash": _hash(token), "user_id": user.id, "sign_in_id": sign_in_id,
        "created_at": at, "last_seen_at": at, "revoked_at": None,
        "ip": audit.client_ip(), "user_agent": audit.client_agent(), "amr": list(amr or []),
    })
    return token


_INSERT = AuthSession.__table__.insert()


def is_live(row, config=None) -> bool:
    """Not revoked, idle or past its absolute limit. `row` may be a plain row of the session's
    columns (forward-auth); `config` is the app's, for callers outside an app context."""
    at = clock.now()
    config = config or current_app.config
    idle = timedelta(minutes=config["SESSION_IDLE_MINUTES"])
    absolute = timedelta(hours=config["SESSION_ABSOLUTE_HOURS"])
    return row.revoked_at is None and row.last_seen_at + idle > at and row.created_at + absolute > at


def user_for_token(token: Optional[str], user_id: str) -> Optional[User]:
    """The user of a live session whose token this is, or None."""
    if not token or not user_id.isdigit():
        return None
    # The user comes in the same query: every page, and /auth/verify on every request the
    # web server asks about, costs one indexed lookup.
    row = db.session.scalar(_WITH_USER, {"token_hash": _hash(token)})
    if row is None or row.user_id != int(user_id) or not is_live(row) or not row.user.is_active:
        return None
    if clock.now() - row.last_seen_at >= TOUCH_EVERY:
        row.last_seen_at = clock.now()
        db.session.commit()
    return row.user


_WITH_USER = (select(AuthSession).options(joinedload(AuthSession.user))
              .where(AuthSession.token_hash == bindparam("token_hash")))


def rotate(token: Optional[str]) -> Optional[str]:
    """Give the live session with this token a new token, and return it (None when there is no
    such session); the caller commits and puts it in the cookie.

    For the session a change keeps while it ends every other one (a new password, a new email
    address confirmed here, "sign out everywhere else"): whoever copied this browser's cookie
    held this session too, and must lose it with the rest. The session stays the same row, so
    when it began, how it signed in and the apps' tokens it holds are unchanged."""
    if not token:
        return None
    fresh = secrets.token_urlsafe(32)
    changed = db.session.execute(
        update(AuthSession)
        .where(AuthSession.token_hash == _hash(token), AuthSession.revoked_at.is_(None))
        .values(token_hash=_hash(fresh))
    ).rowcount
    return fresh if changed == 1 else None


def started_at(token: Optional[str]) -> Optional[datetime]:
    """When the session with this token began, that is when its sign-in finished."""
    if not token:
        return None
    return db.session.scalar(
        select(AuthSession.created_at).where(AuthSession.token_hash == _hash(token))
    )


def revoke(token: Optional[str]) -> None:
    """End the session whose token this is."""
    if token:
        db.session.execute(
            update(AuthSession)
            .where(AuthSession.token_hash == _hash(token), AuthSession.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )


def revoke_all_for(user_id: int) -> int:
    """End every session of a user (password change, role change, support action), and
    forget the devices trusted to skip the code: whatever ended the sessions ends those too."""
    from services.authenticators import trusted_devices  # it needs nothing from here

    trusted_devices.forget_all(user_id, "all sessions ended")
    return revoke_live(user_id)


def revoke_live(user_id: int, *conditions, keep_token: Optional[str] = None) -> int:
    """End the user's live sessions (those matching `conditions`, if any), all but the one
    with `keep_token`. Returns how many ended; the caller commits."""
    ending = [AuthSession.user_id == user_id, AuthSession.revoked_at.is_(None), *conditions]
    if keep_token:
        ending.append(AuthSession.token_hash != _hash(keep_token))
    return db.session.execute(
        update(AuthSession).where(*ending).values(revoked_at=clock.now())
    ).rowcount or 0


def ended_user(token: Optional[str]) -> Optional[User]:
    """The user whose session this token was, once it has ended (idle, too old, signed out
    from elsewhere), if the account is still switched on; None for a live session or none."""
    if not token:
        return None
    row = db.session.scalar(_WITH_USER, {"token_hash": _hash(token)})
    if row is None or is_live(row) or not row.user.is_active:
        return None
    return row.user


def session_for_token(token: Optional[str]) -> Optional[AuthSession]:
    """The live session whose token this is (its start, `amr` and sign-in), or None."""
    if not token:
        return None
    row = db.session.scalar(select(AuthSession).where(AuthSession.token_hash == _hash(token)))
    return row if row is not None and is_live(row) else None
