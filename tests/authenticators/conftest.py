"""Fixtures for passkeys, authenticator apps and trusted devices.

SoftKey is a software passkey: it answers py_webauthn's options the way a browser and a
platform authenticator do (attestation "none", ES256), so the server's checks can be tried
with answers no browser would send: no user verification, another origin, a counter that
goes backwards. The real browser test uses Chromium's virtual authenticator instead.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
from datetime import timedelta
from typing import Optional

import cbor2
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from services import clock
from tests.conftest import Browser

ORIGIN = "http://localhost"  # TestConfig.PORTAL_URL
RP_ID = "localhost"
SECRET_ON_PAGE = re.compile(r'id="totp-secret">([A-Z2-7 ]+)<')


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class SoftKey:
    """A passkey in software: one ES256 key pair, a credential id and a signature counter."""

    def __init__(self, *, counter_starts: int = 0, synced: bool = False) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        # A synced passkey (iCloud Keychain, Google Password Manager): backup eligible and
        # backed up (WebAuthn's BE and BS flags), in every answer.
        self.backup_flags = 0x08 | 0x10 if synced else 0
        self.credential_id = os.urandom(16)
        self.count = counter_starts
        self.user_handle: Optional[str] = None
        self.public_key_cbor: Optional[bytes] = None  # set to send a malformed key instead

    def _client_data(self, kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin,
                           "crossOrigin": False}).encode()

    def register(self, options: dict, *, origin: str = ORIGIN, rp_id: str = RP_ID,
                 verified: bool = True) -> str:
        """navigator.credentials.create(): the new credential, as the JSON a browser sends."""
        self.user_handle = options["user"]["id"]
        numbers = self.key.public_key().public_numbers()
        cose = {1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"),
                -3: numbers.y.to_bytes(32, "big")}
        flags = (0x01 | (0x04 if verified else 0) | 0x40  # user present, verified, key attached
                 | self.backup_flags)
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
                     + self.count.to_bytes(4, "big") + bytes(16)
                     + len(self.credential_id).to_bytes(2, "big") + self.credential_id
                     + (self.public_key_cbor or cbor2.dumps(cose)))
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return json.dumps({
            "id": b64(self.credential_id), "rawId": b64(self.credential_id),
            "type": "public-key", "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(self._client_data("webauthn.create", options["challenge"],
                                                        origin)),
                "attestationObject": b64(attestation), "transports": ["internal"],
            },
        })

    def sign(self, options: dict, *, origin: str = ORIGIN, rp_id: str = RP_ID,
             verified: bool = True, count: Optional[int] = None) -> str:
        """navigator.credentials.get(): a signed answer to the challenge, as JSON."""
        self.count = self.count + 1 if count is None else count
        flags = 0x01 | (0x04 if verified else 0) | self.backup_flags
        auth_data = (hashlib.sha256(rp_id.encode()).digest() + bytes([flags])
                     + self.count.to_bytes(4, "big"))
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        signature = self.key.sign(auth_data + hashlib.sha256(client_data).digest(),
                                  ec.ECDSA(hashes.SHA256()))
        return json.dumps({
            "id": b64(self.credential_id), "rawId": b64(self.credential_id),
            "type": "public-key", "clientExtensionResults": {},
            "response": {
                "clientDataJSON": b64(client_data), "authenticatorData": b64(auth_data),
                "signature": b64(signature), "userHandle": self.user_handle,
            },
        })


def add_passkey(b: Browser, key: SoftKey, name: str = "My phone",
                password: Optional[str] = None) -> dict:
    """Add a passkey from /account/security as the page's script would; the last answer."""
    fields = {"name": name}
    if password is not None:
        fields["password"] = password
    answer = b.post("/account/passkeys/options", fields, form_page="/account/security")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    options = answer.get_json()["options"]
    done = b.post("/account/passkeys/verify", {"credential": key.register(options)},
                  form_page="/account/security")
    return {"status": done.status_code, **(done.get_json() or {})}


def passkey_options(b: Browser) -> dict:
    """The login page's script asking for a challenge."""
    answer = b.post("/login/passkey/options", form_page="/login")
    assert answer.status_code == 200, answer.get_data(as_text=True)
    return answer.get_json()["options"]


def sign_in_with(b: Browser, key: SoftKey, **sign_options):
    """The login page's script: a challenge, the passkey's answer; the server's response."""
    options = passkey_options(b)
    return b.post("/login/passkey/verify", {"credential": key.sign(options, **sign_options)},
                  form_page="/login")


def give_confirmed_app(app, email: str = "client@example.com") -> str:
    """A confirmed authenticator app for the account, as finishing its setup on
    /account/security leaves it (set_up_app does it through the page), its codes asked for
    from the next sign-in; the secret, for totp_now."""
    from extensions import db
    from models import TotpAuthenticator, User
    from services.authenticators import totp

    secret = pyotp.random_base32()
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == email))
        db.session.add(TotpAuthenticator(
            user_id=user.id, secret_encrypted=totp._fernet().encrypt(secret.encode()).decode(),
            created_at=clock.now(), confirmed_at=clock.now()))
        user.channel = "totp"
        db.session.commit()
    return secret


def totp_now(secret: str, offset_steps: int = 0) -> str:
    """What the client's app shows now (by the app's one clock), or some steps away."""
    return pyotp.TOTP(secret).at(clock.now().timestamp() + 30 * offset_steps)


def secret_from(page_html: str) -> str:
    match = SECRET_ON_PAGE.search(page_html)
    assert match, "no element with id totp-secret on the page"
    return match.group(1).replace(" ", "")


@pytest.fixture
def set_up_app(sign_in):
    """Sign in by email, set up an authenticator app on /account/security; returns the secret."""

    def run(b: Optional[Browser] = None) -> str:
        b = sign_in(b=b)
        started = b.post("/account/security", {"form": "totp-start"})
        assert started.status_code == 302, started.get_data(as_text=True)
        secret = secret_from(b.text("/account/security"))
        confirmed = b.post("/account/security", {"form": "totp-confirm",
                                                 "code": totp_now(secret)})
        assert confirmed.status_code == 302, confirmed.get_data(as_text=True)
        # The setup used this 30-second step; half a minute later the app shows a new code.
        clock.advance(timedelta(seconds=30))
        return secret

    return run


@pytest.fixture(autouse=True)
def client_user(user) -> int:
    """client@example.com, whom every test here signs in as."""
    return user
