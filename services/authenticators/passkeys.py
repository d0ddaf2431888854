"""Passkeys (WebAuthn), wrapped thinly around py_webauthn.

* The relying party is PORTAL_URL: its host name is the rp id and its origin the only origin
  accepted, so a passkey made here never answers a look-alike site.
* Every passkey is a discoverable credential and user verification (fingerprint, face, PIN) is
  required both when it is made and when it is used: one passkey is a multi-factor
  cryptographic authenticator (NIST SP 800-63B), something you have unlocked by something you
  are or know.
* Challenges live in the database, not in a process's memory, so any server can check the
  answer; each is taken (deleted) before it is checked, so it is used at most once.
* The signature counter is kept; one that does not go up suggests a copied key, which is
  refused and recorded as a clone warning.
* py_webauthn is imported by the functions that make or check a passkey, not with this
  module: with its certificate and ASN.1 libraries it is 5 MB that a worker serving no
  passkey request need not hold (the account page and password resets use this module too).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Passkey, User, WebAuthnChallenge
from services import audit, clock, urls
from services.authenticators import sign_ins
from services.keys import derived_key

CHALLENGE_LIFETIME = timedelta(minutes=5)
TIMEOUT_MS = 120_000
MAX_PASSKEYS = 10
NAME_LENGTH = 60
MAX_CREDENTIAL_ID_BYTES = 1023  # WebAuthn Level 3, 5.1 (credential ids are at most 1023 bytes)
# RFC 8176: a hardware-secured key ("hwk"), the person present at the device ("user"), and
# more than one factor ("mfa"): the key, unlocked by a fingerprint, face or PIN (user
# verification is required). Which of those unlocked it the authenticator does not say, so
# neither "fpt" nor "pin" is claimed. A synced passkey (backed up, WebAuthn's BS flag) leaves
# the device's hardware to travel between the client's devices: a software-secured key ("swk").
AMR = ["hwk", "user", "mfa"]
SYNCED_AMR = ["swk", "user", "mfa"]


def amr_for(passkey: Passkey) -> list[str]:
    """The session's amr for a sign-in with this passkey, as its last answer described it."""
    return SYNCED_AMR if passkey.backed_up else AMR

REGISTER, SIGN_IN = "register", "sign_in"

# What py_webauthn raises on a browser's answer it cannot use. Besides its own exceptions,
# some malformed structures reach plain indexing and lookups inside it (a public key that is
# an empty string or a list gives IndexError), and those are bad input too, not our fault.
BAD_ANSWER = (ValueError, LookupError, TypeError)


def _hash(handle: str) -> str:
    return hashlib.sha256(handle.encode()).hexdigest()


def _relying_party() -> tuple[str, str]:
    return urls.portal_host(), urls.portal_origin()


def _user_handle(user: User) -> str:
    """The WebAuthn user id: the one already used for this user's passkeys, else a keyed hash.

    Neither the email nor the database id, so an authenticator learns nothing from it.
    """
    from webauthn.helpers import bytes_to_base64url

    existing = db.session.scalar(
        select(Passkey.user_handle).where(Passkey.user_id == user.id).limit(1))
    if existing:
        return existing
    digest = hmac.new(derived_key(b"webauthn-user-handle"), str(user.id).encode(),
                      hashlib.sha256).digest()
    return bytes_to_base64url(digest)


def _new_challenge(purpose: str, *, user_id: Optional[int] = None,
                   name: Optional[str] = None) -> tuple[str, bytes]:
    """Store a fresh challenge; returns the handle for the session cookie and the challenge."""
    from webauthn.helpers import bytes_to_base64url

    at = clock.now()
    # Old challenges nobody answered are of no use to anyone.
    db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.expires_at < at))
    handle = secrets.token_urlsafe(32)
    challenge = secrets.token_bytes(32)
    db.session.add(WebAuthnChallenge(
        handle_hash=_hash(handle), purpose=purpose, user_id=user_id,
        challenge=bytes_to_base64url(challenge), name=name, created_at=at,
        expires_at=at + CHALLENGE_LIFETIME,
    ))
    return handle, challenge


def _take_challenge(handle: Optional[str], purpose: str) -> Optional[WebAuthnChallenge]:
    """The challenge behind this handle, deleted so that no second answer can use it."""
    if not isinstance(handle, str) or not handle:
        return None
    row = db.session.scalar(select(WebAuthnChallenge).where(
        WebAuthnChallenge.handle_hash == _hash(handle), WebAuthnChallenge.purpose == purpose))
    if row is None:
        return None
    taken = db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.id == row.id))
    if taken.rowcount != 1 or row.expires_at <= clock.now():
        return None  # another request took it first, or it ran out
    return row


def passkeys_of(user: User) -> list[Passkey]:
    return list(db.session.scalars(
        select(Passkey).where(Passkey.user_id == user.id).order_by(Passkey.created_at)))


def room_for_another(user: User) -> bool:
    """Whether the account may have one more passkey. Asked before the browser is given a
    challenge: once the device has made a passkey it keeps it, even if we then refuse it."""
    return len(passkeys_of(user)) < MAX_PASSKEYS


def clean_name(raw: Optional[str]) -> str:
    """The name a client gave a passkey, tidied; a default when they gave none."""
    name = " ".join((raw or "").split())[:NAME_LENGTH]
    return name or "Passkey"


# --- making a passkey -----------------------------------------------------------------

def registration_options(user: User, name: str) -> tuple[str, str]:
    """Options for navigator.credentials.create(), as JSON, and the challenge's handle."""
    from webauthn import generate_registration_options, options_to_json
    from webauthn.helpers import base64url_to_bytes
    from webauthn.helpers.structs import (
        AuthenticatorSelectionCriteria, PublicKeyCredentialDescriptor, ResidentKeyRequirement,
        UserVerificationRequirement,
    )

    rp_id, _ = _relying_party()
    handle, challenge = _new_challenge(REGISTER, user_id=user.id, name=clean_name(name))
    options = generate_registration_options(
        rp_id=rp_id, rp_name=current_app.config["PORTAL_NAME"],
        user_id=base64url_to_bytes(_user_handle(user)), user_name=user.email,
        user_display_name=user.email, challenge=challenge, timeout=TIMEOUT_MS,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED,
            user_verification=UserVerificationRequirement.REQUIRED,
        ),
        exclude_credentials=[
            PublicKeyCredentialDescriptor(id=base64url_to_bytes(p.credential_id))
            for p in passkeys_of(user)
        ],
    )
    return handle, options_to_json(options)


@dataclass
class Registered:
    ok: bool
    passkey: Optional[Passkey] = None
    problem: str = ""  # "expired", "invalid", "duplicate", "too_many"


def finish_registration(user: User, handle: Optional[str], credential: str) -> Registered:
    """Check the browser's answer to the challenge and keep the new passkey."""
    from webauthn import verify_registration_response
    from webauthn.helpers import (
        base64url_to_bytes, bytes_to_base64url, decode_credential_public_key,
        decoded_public_key_to_cryptography,
    )
    from webauthn.helpers.exceptions import WebAuthnException

    row = _take_challenge(handle, REGISTER)
    if row is None or row.user_id != user.id:
        return Registered(False, problem="expired")
    if not room_for_another(user):  # one added since the options (another tab)
        return Registered(False, problem="too_many")
    rp_id, origin = _relying_party()
    try:
        verified = verify_registration_response(
            credential=credential, expected_challenge=base64url_to_bytes(row.challenge),
            expected_rp_id=rp_id, expected_origin=origin, require_user_verification=True,
        )
        # The attestation checks the key's shape only as far as "none" needs; a key that
        # cannot be turned into one to check signatures with could never sign in.
        decoded_public_key_to_cryptography(
            decode_credential_public_key(verified.credential_public_key))
        transports = _transports(credential)
    except (WebAuthnException, *BAD_ANSWER) as error:
        audit.record("passkey_refused", user_id=user.id, outcome="invalid",
                     detail={"step": "register", "reason": str(error)[:200]})
        return Registered(False, problem="invalid")
    if len(verified.credential_id) > MAX_CREDENTIAL_ID_BYTES:
        # WebAuthn caps credential ids at 1023 bytes; py_webauthn does not check, and a longer
        # one would not fit its column (a 500 on PostgreSQL).
        audit.record("passkey_refused", user_id=user.id, outcome="invalid",
                     detail={"step": "register", "reason": "credential id over 1023 bytes"})
        return Registered(False, problem="invalid")
    credential_id = bytes_to_base64url(verified.credential_id)
    if db.session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)):
        return Registered(False, problem="duplicate")
    passkey = Passkey(
        user_id=user.id, credential_id=credential_id,
        public_key=verified.credential_public_key, sign_count=verified.sign_count,
        user_handle=_user_handle(user), name=row.name or "Passkey", transports=transports,
        backed_up=bool(verified.credential_backed_up), created_at=clock.now(),
    )
    db.session.add(passkey)
    challenge_id = row.id
    try:
        db.session.flush()
    except IntegrityError:
        # The same credential stored since the check above, by a request checked at the same
        # moment (the unique index stops it): told, not a 500. The rollback brings back the
        # challenge this answer used, so it goes again.
        db.session.rollback()
        db.session.execute(delete(WebAuthnChallenge).where(WebAuthnChallenge.id == challenge_id))
        return Registered(False, problem="duplicate")
    audit.record("passkey_added", user_id=user.id, outcome="ok",
                 detail={"passkey_id": passkey.id, "name": passkey.name,
                         "synced": passkey.backed_up})
    return Registered(True, passkey)


def _transports(credential: str) -> list[str]:
    data = json.loads(credential)
    found = (data.get("response") or {}).get("transports") or []
    return [str(t)[:20] for t in found if isinstance(t, str)][:6]


def remove(user: User, passkey_id: int, *, keep_token: Optional[str] = None) -> Optional[Passkey]:
    """Delete one of the user's passkeys (another user's id finds nothing), and end the
    sessions it opened but the one with `keep_token`."""
    passkey = db.session.scalar(
        select(Passkey).where(Passkey.id == passkey_id, Passkey.user_id == user.id))
    if passkey is None:
        return None
    db.session.delete(passkey)
    ended = sign_ins.end_sessions_opened_by(user.id, "passkey_used", "passkey_id", passkey.id,
                                            keep_token=keep_token)
    audit.record("passkey_removed", user_id=user.id,
                 detail={"passkey_id": passkey.id, "name": passkey.name,
                         "sessions_ended": ended})
    return passkey


def remove_all(user_id: int, reason: str) -> list[str]:
    """Delete every passkey of a user, as account recovery must: a passkey signs in without
    the password, so one added by someone else would outlive the reset meant to shut them
    out. Returns the names removed; the caller commits."""
    names = list(db.session.scalars(
        select(Passkey.name).where(Passkey.user_id == user_id).order_by(Passkey.id)))
    if names:
        db.session.execute(delete(Passkey).where(Passkey.user_id == user_id))
        audit.record("passkeys_removed", user_id=user_id,
                     detail={"count": len(names), "reason": reason})
    return names


# --- signing in with a passkey --------------------------------------------------------

def authentication_options() -> tuple[str, str]:
    """Options for navigator.credentials.get() with any of this site's passkeys, as JSON."""
    from webauthn import generate_authentication_options, options_to_json
    from webauthn.helpers.structs import UserVerificationRequirement

    rp_id, _ = _relying_party()
    handle, challenge = _new_challenge(SIGN_IN)
    options = generate_authentication_options(
        rp_id=rp_id, challenge=challenge, timeout=TIMEOUT_MS,
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return handle, options_to_json(options)


@dataclass
class Used:
    ok: bool
    user: Optional[User] = None
    passkey: Optional[Passkey] = None
    problem: str = ""  # "expired", "unknown", "invalid", "clone", "inactive"


def finish_authentication(handle: Optional[str], credential: str) -> Used:
    """Check a passkey's signature over our challenge; the user it belongs to, or why not."""
    from webauthn import verify_authentication_response
    from webauthn.helpers import (
        base64url_to_bytes, bytes_to_base64url, parse_authentication_credential_json,
        parse_authenticator_data,
    )
    from webauthn.helpers.exceptions import WebAuthnException

    row = _take_challenge(handle, SIGN_IN)
    if row is None:
        return Used(False, problem="expired")
    try:
        parsed = parse_authentication_credential_json(credential)
    except (WebAuthnException, *BAD_ANSWER):
        return Used(False, problem="invalid")
    passkey = db.session.scalar(
        select(Passkey).where(Passkey.credential_id == bytes_to_base64url(parsed.raw_id)))
    if passkey is None:
        # Removed from the account, or made for another site at this address.
        audit.record("passkey_refused", outcome="unknown", detail={"step": "sign_in"})
        return Used(False, problem="unknown")
    user = db.session.get(User, passkey.user_id)
    handle_given = parsed.response.user_handle
    rp_id, origin = _relying_party()
    try:
        if handle_given is None or bytes_to_base64url(handle_given) != passkey.user_handle:
            raise ValueError("the user handle does not match the passkey's")
        # The counter is judged below, in our own words, so the library is given 0 here.
        verified = verify_authentication_response(
            credential=parsed, expected_challenge=base64url_to_bytes(row.challenge),
            expected_rp_id=rp_id, expected_origin=origin,
            credential_public_key=passkey.public_key, credential_current_sign_count=0,
            require_user_verification=True,
        )
        new_count = parse_authenticator_data(parsed.response.authenticator_data).sign_count
    except (WebAuthnException, *BAD_ANSWER) as error:
        audit.record("passkey_refused", user_id=passkey.user_id, outcome="invalid",
                     detail={"step": "sign_in", "passkey_id": passkey.id,
                             "name": passkey.name, "reason": str(error)[:200]})
        return Used(False, problem="invalid")
    stored_count = passkey.sign_count
    if (new_count or stored_count) and new_count <= stored_count:
        return _clone_warning(passkey, stored_count, new_count)
    if not user.is_active:
        audit.record("passkey_refused", user_id=user.id, outcome="inactive",
                     detail={"step": "sign_in", "passkey_id": passkey.id, "name": passkey.name})
        return Used(False, problem="inactive")
    # The count moves on only from the one read above: two answers checked at once (a copy
    # of the key used at the same moment) would otherwise both pass, each having read the
    # old count. The second waits for the first's row and then finds it moved.
    moved = db.session.execute(
        update(Passkey).where(Passkey.id == passkey.id, Passkey.sign_count == stored_count)
        .values(sign_count=verified.new_sign_count,
                backed_up=bool(verified.credential_backed_up), last_used_at=clock.now()))
    if moved.rowcount != 1:
        db.session.refresh(passkey)
        return _clone_warning(passkey, passkey.sign_count, new_count)
    return Used(True, user=user, passkey=passkey)


def _clone_warning(passkey: Passkey, stored_count: int, given_count: int) -> Used:
    """Two copies of one key would each count on their own: a count that fails to go up
    means a copy may exist. Synced passkeys always send 0, so they never trip this."""
    audit.record("passkey_clone_warning", user_id=passkey.user_id, outcome="refused",
                 detail={"passkey_id": passkey.id, "name": passkey.name,
                         "stored_count": stored_count, "given_count": given_count})
    return Used(False, passkey=passkey, problem="clone")
