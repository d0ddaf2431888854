"""Keys derived from SECRET_KEY, one per purpose, and the secrets kept encrypted at rest.

The lowest layer of the app's cryptography: codes, the outbox, authenticator apps and passkeys
all take their keys from here, so none of them has to import another for a key.
"""

from __future__ import annotations

import base64
from typing import Optional

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from flask import current_app


def derived_key(purpose: bytes) -> bytes:
    """A 32-byte key for one purpose (e.g. b"code-hmac"), derived from SECRET_KEY (HKDF-SHA256)."""
    cache = current_app.extensions.setdefault("clientgate_keys", {})
    if purpose not in cache:
        cache[purpose] = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=b"clientgate", info=purpose
        ).derive(current_app.config["SECRET_KEY"].encode())
    return cache[purpose]


def fernet_for(purpose: bytes) -> Fernet:
    """A Fernet whose key is derived from SECRET_KEY for one purpose (e.g. b"totp-secret")."""
    return Fernet(base64.urlsafe_b64encode(derived_key(purpose)))


def encrypt_secret(secret: str) -> str:
    """A code or link token as the outbox keeps it until it is sent or its sign-in ends."""
    return fernet_for(b"code-encryption").encrypt(secret.encode()).decode()


def decrypt_secret(token: str) -> Optional[str]:
    """The secret again, or None if it cannot be read (SECRET_KEY changed, or tampered with)."""
    try:
        return fernet_for(b"code-encryption").decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
