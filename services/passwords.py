"""Password hashing with argon2id, the same work spent on an unknown email as on a known one."""

from __future__ import annotations

import secrets
from functools import lru_cache
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from models import User

_hasher = PasswordHasher()  # argon2id, RFC 9106 low-memory profile

MAX_PASSWORD_LENGTH = 1024


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """A hash of nothing anyone knows, verified when the email is unknown, to spend the same time."""
    return _hasher.hash(secrets.token_urlsafe(32))


def verify_password(user: Optional[User], password: str) -> bool:
    """True when `password` is the user's. Costs one argon2 verification whether or not the user exists."""
    password = password[:MAX_PASSWORD_LENGTH]
    stored = user.password_hash if user is not None else _dummy_hash()
    try:
        _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    if user is None:
        return False
    if _hasher.check_needs_rehash(stored):
        user.password_hash = _hasher.hash(password)
    return True


def warm_up() -> None:
    """Make the dummy hash at start, so the first unknown email is not slower than the rest."""
    _dummy_hash()
