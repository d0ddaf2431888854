"""Single-use links: random, stored only as hashes, expiring, bound to the account's state.

A link carries 256 random bits. The database keeps the SHA-256 of it, so a copy of the
database opens no account. Each link also keeps a fingerprint of the account when it was
made (email, password hash, active or not): a reset link dies when the password or email
changes, an invitation dies once a password is chosen, and any link dies on deactivation.
Making a new link of a purpose ends the account's earlier ones of that purpose.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from sqlalchemy import select, update

from extensions import db
from models import AccountToken, User
from services import clock

LIFETIMES = {
    "invitation": timedelta(days=7),
    "reset": timedelta(hours=1),
    "email": timedelta(hours=1),
}

# What checking a link can find.
VALID, UNKNOWN, EXPIRED, USED, REVOKED, STALE = (
    "valid", "unknown", "expired", "used", "revoked", "stale")

# Longer than any link we make; anything longer is not worth a database lookup.
MAX_TOKEN_LENGTH = 100


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def fingerprint(user: User) -> str:
    """The account's state that a link is bound to."""
    state = f"{user.id}\x1f{user.email}\x1f{user.password_hash}\x1f{user.deactivated_at is None}"
    return hashlib.sha256(state.encode()).hexdigest()


def issue(user: User, purpose: str, *, created_by: Optional[User] = None,
          new_email: Optional[str] = None) -> tuple[str, AccountToken]:
    """Make a link for `purpose`, ending the account's earlier ones; returns the raw token
    and its row.

    The caller commits, and hands the token only to the message (encrypted in the outbox).
    """
    revoke(user, purpose)
    token = secrets.token_urlsafe(32)
    at = clock.now()
    row = AccountToken(
        user_id=user.id, purpose=purpose, token_hash=_hash(token), bound_to=fingerprint(user),
        new_email=new_email, created_at=at, expires_at=at + LIFETIMES[purpose],
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add(row)
    return token, row


def revoke(user: User, *purposes: str) -> int:
    """End the account's live links of these purposes (all purposes when none is named)."""
    conditions = [AccountToken.user_id == user.id, AccountToken.used_at.is_(None),
                  AccountToken.revoked_at.is_(None)]
    if purposes:
        conditions.append(AccountToken.purpose.in_(purposes))
    return db.session.execute(
        update(AccountToken).where(*conditions).values(revoked_at=clock.now())
    ).rowcount or 0


@dataclass(frozen=True)
class Check:
    """What a link turned out to be. `token` and `user` are set whenever the link is ours."""

    outcome: str
    token: Optional[AccountToken] = None

    @property
    def ok(self) -> bool:
        return self.outcome == VALID

    @property
    def user(self) -> Optional[User]:
        return self.token.user if self.token is not None else None


def check(raw: Optional[str], purpose: str) -> Check:
    """Whether this link may be used now (it is not used up here: see `use`)."""
    if not raw or len(raw) > MAX_TOKEN_LENGTH:
        return Check(UNKNOWN)
    row = db.session.scalar(select(AccountToken).where(AccountToken.token_hash == _hash(raw)))
    if row is None or row.purpose != purpose:
        return Check(UNKNOWN)
    return check_row(row)


def use(row: AccountToken) -> bool:
    """Use the link up, once: False when another request used it first (the caller commits)."""
    result = db.session.execute(
        update(AccountToken)
        .where(AccountToken.id == row.id, AccountToken.used_at.is_(None),
               AccountToken.revoked_at.is_(None))
        .values(used_at=clock.now())
    )
    return result.rowcount == 1


def latest(user: User, purpose: str) -> Optional[AccountToken]:
    """The account's newest link of this purpose, whatever became of it."""
    return db.session.scalar(
        select(AccountToken).where(AccountToken.user_id == user.id,
                                   AccountToken.purpose == purpose)
        .order_by(AccountToken.created_at.desc(), AccountToken.id.desc()).limit(1)
    )


def check_row(row: AccountToken) -> Check:
    """`check` for a link's row already in hand (for showing what is pending)."""
    if row.used_at is not None:
        return Check(USED, row)
    if row.revoked_at is not None:
        return Check(REVOKED, row)
    if clock.now() >= row.expires_at:
        return Check(EXPIRED, row)
    if row.bound_to != fingerprint(row.user) or not row.user.is_active:
        return Check(STALE, row)
    return Check(VALID, row)
