"""Password hashing with argon2id, the same work spent on an unknown email as on a known one."""

from __future__ import annotations

import secrets
import unicodedata
from functools import lru_cache
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app, has_app_context

from models import User

MAX_PASSWORD_LENGTH = 1024


@lru_cache(maxsize=None)
def _hasher_costing(cost: tuple) -> PasswordHasher:
    return PasswordHasher(**dict(cost))


def _hasher() -> PasswordHasher:
    """argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile: 64 MiB, 3 passes),
    unless the app's PASSWORD_HASH_COST lowers them, as only the tests' configuration does.
    Outside an app (the benchmark's own timing), the defaults."""
    cost = (current_app.config.get("PASSWORD_HASH_COST") if has_app_context() else None) or {}
    return _hasher_costing(tuple(sorted(cost.items())))


def _nfkc(password: str) -> str:
    # NFKC, as services.accounts.policy compares passwords: the same password typed on
    # another keyboard (composed or decomposed accents, full-width letters) still matches.
    return unicodedata.normalize("NFKC", password)


def hash_password(password: str) -> str:
    return _hasher().hash(_nfkc(password))


@lru_cache(maxsize=None)
def _dummy_hash_by(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_urlsafe(32))


def _dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when the email is unknown, to spend the same time."""
    return _dummy_hash_by(_hasher())


def verify_password(user: Optional[User], password: str) -> bool:
    """True when `password` is the user's. Costs one argon2 verification whether or not the user exists."""
    password = password[:MAX_PASSWORD_LENGTH]
    stored = user.password_hash if user is not None and user.password_hash else _dummy_hash()
    # Passwords set before normalisation was added were hashed as typed: try that too, for
    # a known and an unknown email alike, so the time spent says nothing about the account.
    candidates = dict.fromkeys((_nfkc(password), password))
    hasher = _hasher()
    matched = None
    for candidate in candidates:
        try:
            hasher.verify(stored, candidate)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            continue
        matched = candidate
    if user is None or not user.password_hash or matched is None:
        return False
    if matched != _nfkc(password) or hasher.check_needs_rehash(stored):
        user.password_hash = hash_password(password)
    return True


def warm_up() -> None:
    """Make the dummy hash at start, so the first unknown email is not slower than the rest."""
    _dummy_hash()
