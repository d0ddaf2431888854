"""Databases as firms have them: built at an old revision and filled with the rows the app of
that revision wrote, before `flask db upgrade` takes them to this release.

The rows go in through SQLAlchemy Core against the tables *reflected from the old database*,
not through models.py: an insert naming a column the old schema lacks fails here, as it would
have in the firm's database. Values are what the old code wrote (its event types and details,
its delivery payloads, its statuses), with codes hashed and encrypted under the same keys.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any

from argon2 import PasswordHasher
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import MetaData, create_engine

from config import TestConfig, database_url

FIRST_RELEASE = "722ee4288f6e"
BEFORE_ONE_SPELLING = "b7e4d2a91c05"  # the last revision before emails in one spelling

PASSWORD = "an old client's password 1"
# The old app's argon2id hash, at the tests' low cost: argon2 reads its cost from the hash.
PASSWORD_HASH = PasswordHasher(**TestConfig.PASSWORD_HASH_COST).hash(PASSWORD)


def derived_key(secret_key: str, purpose: bytes) -> bytes:
    """services.keys.derived_key as the first release wrote it (HKDF-SHA256, salt clientgate)."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=b"clientgate",
                info=purpose).derive(secret_key.encode())


def sha256(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def fernet(secret_key: str, purpose: bytes) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(derived_key(secret_key, purpose)))


def code_hash(secret_key: str, sign_in_id: int, code: str) -> str:
    return hmac.new(derived_key(secret_key, b"code-hmac"), f"signin:{sign_in_id}:{code}".encode(),
                    hashlib.sha256).hexdigest()


def encrypt_code(secret_key: str, code: str) -> str:
    return fernet(secret_key, b"code-encryption").encrypt(code.encode()).decode()


class OldDatabase:
    """Rows written into a database at an old revision, through its own (reflected) tables."""

    def __init__(self, url: str, secret_key: str) -> None:
        self.engine = create_engine(database_url(url))
        self.sqlite = self.engine.dialect.name == "sqlite"
        self.secret_key = secret_key
        self.tables = MetaData()
        self.tables.reflect(self.engine)
        self.now = datetime.now(timezone.utc).replace(microsecond=0)

    def close(self) -> None:
        self.engine.dispose()

    def at(self, **delta: float) -> datetime:
        """A time relative to now, as the old app stored it (naive UTC on SQLite)."""
        value = self.now + timedelta(**delta)
        return value.replace(tzinfo=None) if self.sqlite else value

    def insert(self, table: str, **values: Any) -> int:
        with self.engine.begin() as conn:
            result = conn.execute(self.tables.tables[table].insert().values(**values))
            key = result.inserted_primary_key
            return key[0] if key else None

    def user(self, email: str, *, role: str = "client", channel: str = "email",
             phone: str | None = None, **extra: Any) -> int:
        values = dict(email=email, password_hash=PASSWORD_HASH, role=role, channel=channel,
                      phone=phone, phone_verified_at=self.at(days=-30) if phone else None,
                      created_at=self.at(days=-60), password_changed_at=None,
                      lockout_count=0, locked_until=None)
        return self.insert("users", **{**values, **extra})

    def event(self, type_: str, user_id: int | None, *, minutes: float, sign_in_id=None,
              delivery_id=None, outcome=None, detail=None) -> int:
        return self.insert("events", created_at=self.at(minutes=minutes), type=type_,
                           user_id=user_id, sign_in_id=sign_in_id, delivery_id=delivery_id,
                           actor_id=None, outcome=outcome, ip="192.0.2.10",
                           user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/120.0",
                           detail=detail or {})

    def sign_in(self, user_id: int, destination: str, *, status: str, minutes: float,
                channel: str = "email", code: str | None = None, **extra: Any) -> int:
        """A sign-in made `minutes` from now (negative: in the past), with its events."""
        started = self.at(minutes=minutes)
        code = code or f"{secrets.randbelow(10 ** 6):06d}"
        values = dict(
            user_id=user_id, created_at=started, status=status,
            ended_at=None if status == "pending" else self.at(minutes=minutes + 2),
            superseded_by_id=None, channel=channel, destination=destination,
            code_hash="0" * 64, code_encrypted=None,
            expires_at=self.at(minutes=minutes + 10), failed_attempts=0, resend_count=0,
            last_sent_at=started, ip="192.0.2.10",
            user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/120.0", next_url=None)
        sign_in_id = self.insert("sign_ins", **{**values, **extra})
        with self.engine.begin() as conn:
            table = self.tables.tables["sign_ins"]
            conn.execute(table.update().where(table.c.id == sign_in_id).values(
                code_hash=code_hash(self.secret_key, sign_in_id, code),
                code_encrypted=encrypt_code(self.secret_key, code) if status == "pending"
                else None))
        self.event("password_ok", user_id, minutes=minutes, outcome="ok")
        self.event("signin_started", user_id, minutes=minutes, sign_in_id=sign_in_id,
                   detail={"channel": channel})
        return sign_in_id

    def delivery(self, user_id: int, sign_in_id: int | None, *, kind: str, channel: str,
                 destination: str, payload: dict, status: str, minutes: float,
                 code: str | None = None, **extra: Any) -> int:
        created = self.at(minutes=minutes)
        values = dict(
            user_id=user_id, sign_in_id=sign_in_id, kind=kind, channel=channel,
            destination=destination, payload=payload,
            code_encrypted=encrypt_code(self.secret_key, code) if code else None,
            status=status, attempts=0 if status == "queued" else 1, next_attempt_at=created,
            give_up_at=self.at(minutes=minutes + 10), claimed_by=None, claimed_until=None,
            last_error=None, client_ref=secrets.token_hex(20), provider_ref=None,
            created_at=created, sent_at=None, delivered_at=None, failed_at=None)
        values.update(extra)
        delivery_id = self.insert("deliveries", **values)
        self.event("delivery_queued", user_id, minutes=minutes, sign_in_id=sign_in_id,
                   delivery_id=delivery_id, detail={"channel": channel, "kind": kind})
        return delivery_id


def code_payload(db: OldDatabase, minutes: float) -> dict:
    """What the first release's queue_code wrote: the sign-in's times, ISO, and the host."""
    return {"requested_at": db.at(minutes=minutes).replace(tzinfo=timezone.utc).isoformat(),
            "expires_at": db.at(minutes=minutes + 10).replace(tzinfo=timezone.utc).isoformat(),
            "host": "portal.firm.example"}


def fill_first_release(db: OldDatabase) -> dict:
    """A firm's database as the first release left it: staff, clients in old spellings,
    sign-ins in every status with their events, messages sent, failed, queued and in hand."""
    ids: dict = {}
    ids["admin"] = db.user("Admin@Firm.example", role="admin")
    ids["support"] = db.user("support@firm.example", role="support")
    ids["ann"] = ann = db.user("Ann.Client@Example.COM")
    ids["sam"] = db.user("sam@example.com", channel="sms", phone="+447700900123")
    ids["locked"] = db.user("locked@example.com", lockout_count=1,
                            locked_until=db.at(minutes=20))
    # Two spellings of one mailbox, as an import straight into the old table could leave them.
    ids["bob_old_spelling"] = db.user("Bob@Example.com")
    ids["bob"] = db.user("bob@example.com")
    ids["carol"] = db.user("ｃａｒｏｌ@example.com")  # full-width letters
    ids["dee"] = dee = db.user("dee@example.com")
    db.event("user_added", ann, minutes=-60 * 24 * 60, detail={"role": "client", "by": "cli"})
    db.event("role_set", ids["support"], minutes=-60 * 24 * 59,
             detail={"from": "client", "to": "support", "by": "cli"})
    db.event("password_failed", None, minutes=-60 * 24 * 5, outcome="wrong",
             detail={"unknown_email": True})
    db.event("password_failed", ann, minutes=-60 * 24 * 4, outcome="wrong")

    # Ann's sign-ins: one run out, one superseded, one locked by wrong codes, one done.
    address = "Ann.Client@Example.COM"
    expired = db.sign_in(ann, address, status="expired", minutes=-60 * 72)
    db.event("signin_expired", ann, minutes=-60 * 72 + 10, sign_in_id=expired)
    db.event("code_entry", ann, minutes=-60 * 72 + 11, sign_in_id=expired, outcome="expired")
    superseded = db.sign_in(ann, address, status="superseded", minutes=-60 * 48)
    sent = db.delivery(ann, superseded, kind="code", channel="email", destination=address,
                       payload=code_payload(db, -60 * 48), status="sent", minutes=-60 * 48,
                       sent_at=db.at(minutes=-60 * 48 + 0.1))
    db.event("delivery_sent", ann, minutes=-60 * 48 + 0.1, sign_in_id=superseded,
             delivery_id=sent, outcome="sent",
             detail={"channel": "email", "attempts": 1, "transport": "email"})
    db.event("code_resend", ann, minutes=-60 * 48 + 1, sign_in_id=superseded,
             detail={"channel": "email", "count": 1})
    newer = db.sign_in(ann, address, status="completed", minutes=-60 * 48 + 3)
    db.event("signin_superseded", ann, minutes=-60 * 48 + 3, sign_in_id=superseded,
             detail={"by_sign_in": newer})
    db.event("code_entry", ann, minutes=-60 * 48 + 4, sign_in_id=newer, outcome="superseded",
             detail={"earlier_sign_in": superseded})
    db.event("code_entry", ann, minutes=-60 * 48 + 5, sign_in_id=newer, outcome="accepted")
    db.event("signed_in", ann, minutes=-60 * 48 + 5, sign_in_id=newer)
    db.event("logout", ann, minutes=-60 * 47)
    locked = db.sign_in(ann, address, status="locked", minutes=-60 * 24)
    for minute in range(5):
        db.event("code_entry", ann, minutes=-60 * 24 + minute, sign_in_id=locked,
                 outcome="wrong" if minute < 4 else "locked")
    db.event("account_unlocked", ann, minutes=-60 * 23, detail={"by": "cli"})
    # A pending sign-in whose code ran out while the servers were stopped for the upgrade.
    ids["stale_sign_in"] = db.sign_in(ann, address, status="pending", minutes=-30)
    ids["ann_session"] = db.insert(
        "auth_sessions", token_hash=secrets.token_hex(32), user_id=ann, sign_in_id=newer,
        created_at=db.at(minutes=-60 * 48 + 5), last_seen_at=db.at(minutes=-60),
        revoked_at=None, ip="192.0.2.10", user_agent="Mozilla/5.0 (Windows NT 10.0) Firefox/120.0")

    # Sam's text that never arrived.
    sms_sign_in = db.sign_in(ids["sam"], "+447700900123", status="expired", minutes=-60 * 6,
                             channel="sms")
    failed = db.delivery(ids["sam"], sms_sign_in, kind="code", channel="sms",
                         destination="+447700900123", payload=code_payload(db, -60 * 6),
                         status="failed", minutes=-60 * 6, attempts=3,
                         last_error="Vonage refused the message: Non White-listed Destination",
                         failed_at=db.at(minutes=-60 * 6 + 2))
    db.event("delivery_retry", ids["sam"], minutes=-60 * 6 + 1, sign_in_id=sms_sign_in,
             delivery_id=failed, outcome="retrying",
             detail={"channel": "sms", "reason": "timed out", "attempts": 1,
                     "next_attempt_at": db.at(minutes=-60 * 6 + 1.5).isoformat()})
    db.event("delivery_failed", ids["sam"], minutes=-60 * 6 + 2, sign_in_id=sms_sign_in,
             delivery_id=failed, outcome="failed",
             detail={"channel": "sms", "reason": "Vonage refused the message", "attempts": 3})
    db.insert("phone_proofs", user_id=ids["sam"], phone="+447700900456", code_hash="0" * 64,
              created_at=db.at(minutes=-5), expires_at=db.at(minutes=5), failed_attempts=0,
              status="pending", ended_at=None)

    # Dee asked for a code a minute before the servers stopped: it waits in the outbox.
    ids["dee_code"] = "480213"
    ids["dee_sign_in"] = pending = db.sign_in(dee, "dee@example.com", status="pending",
                                              minutes=-1, code=ids["dee_code"])
    ids["dee_delivery"] = db.delivery(
        dee, pending, kind="code", channel="email", destination="dee@example.com",
        payload=code_payload(db, -1), status="queued", minutes=-1, code=ids["dee_code"])
    # The lockout email of the locked client, queued, and a notice a killed server had in
    # hand (its claim ran out).
    ids["lockout_notice"] = db.delivery(
        ids["locked"], None, kind="notice", channel="email", destination="locked@example.com",
        payload={"template": "lockout", "values": {"until": "13:05 on 4 December 2026",
                                                     "wait": "20 minutes", "failures": 10}},
        status="queued", minutes=-1, give_up_at=db.at(hours=24))
    ids["notice_in_hand"] = db.delivery(
        ids["sam"], None, kind="notice", channel="email", destination="sam@example.com",
        payload={"template": "security_change",
                 "values": {"change": "Codes now go by text message.",
                            "when": "12:00 on 4 December 2026"}},
        status="sending", minutes=-3, attempts=1, claimed_by="old-server:1234",
        claimed_until=db.at(minutes=-2), give_up_at=db.at(hours=24))
    db.insert("dispatcher_beats", worker="old-server:1234", beat_at=db.at(minutes=-2))
    # Sam was signed in when the servers stopped; the browser keeps the session's token.
    ids["sam_token"] = token = secrets.token_urlsafe(32)
    db.insert("auth_sessions", token_hash=sha256(token), user_id=ids["sam"], sign_in_id=None,
              created_at=db.at(minutes=-20), last_seen_at=db.at(minutes=-2), revoked_at=None,
              ip="192.0.2.30", user_agent="Mozilla/5.0 (Android 14) Chrome/120 Mobile")
    return ids


def bound_to(user_id: int, email: str, password_hash: str, active: bool = True) -> str:
    """services.accounts.tokens.fingerprint: the account's state a link is bound to."""
    return sha256(f"{user_id}\x1f{email}\x1f{password_hash}\x1f{active}")


def fill_before_one_spelling(db: OldDatabase) -> dict:
    """A database as the release before "one spelling" left it (b7e4d2a91c05): addresses
    stored trimmed and lowercased only, links in the post, an app signing in through OpenID
    Connect, an authenticator app, a passkey, a trusted browser and an account switched off."""
    from joserfc.jwk import RSAKey
    import pyotp

    ids: dict = {}
    ids["admin"] = admin = db.user("admin@firm.example", role="admin")
    # Invited under a full-width spelling (the staff form lowercased only): the link waits.
    ids["carol"] = carol = db.user("ｃａｒｏｌ@example.com", password_hash="")
    ids["carol_link"] = token = secrets.token_urlsafe(32)
    db.insert("account_tokens", user_id=carol, purpose="invitation", token_hash=sha256(token),
              bound_to=bound_to(carol, "ｃａｒｏｌ@example.com", ""), new_email=None,
              created_at=db.at(days=-1), expires_at=db.at(days=6), used_at=None,
              revoked_at=None, created_by_id=admin)
    # A reset link for an address whose domain the CLI stored as IDNA A-labels.
    ids["fay"] = fay = db.user("fay@xn--exmple-cua.com")
    ids["fay_link"] = token = secrets.token_urlsafe(32)
    db.insert("account_tokens", user_id=fay, purpose="reset", token_hash=sha256(token),
              bound_to=bound_to(fay, "fay@xn--exmple-cua.com", PASSWORD_HASH), new_email=None,
              created_at=db.at(minutes=-5), expires_at=db.at(minutes=55), used_at=None,
              revoked_at=None, created_by_id=None)
    # A new address typed with a full-width letter, its confirmation link in the post.
    ids["erin"] = erin = db.user("erin@example.com")
    ids["erin_new"] = "ｅrin.new@example.com"
    ids["erin_link"] = token = secrets.token_urlsafe(32)
    db.insert("account_tokens", user_id=erin, purpose="email", token_hash=sha256(token),
              bound_to=bound_to(erin, "erin@example.com", PASSWORD_HASH),
              new_email=ids["erin_new"], created_at=db.at(minutes=-5),
              expires_at=db.at(minutes=55), used_at=None, revoked_at=None, created_by_id=None)
    ids["hal"] = db.user("hal@example.com", deactivated_at=db.at(days=-3), name="Hal Off")
    # 254 characters, the most an address may have; its one spelling ("ﬀ" is "ff") has 255.
    ids["long_address"] = "z" * 62 + "ﬀ@" + ".".join(["b" * 60] * 3) + ".example"
    ids["zed"] = db.user(ids["long_address"])
    # "Forgotten your password?" asked just before the servers stopped: the request waits in
    # the outbox under the address as typed, for the dispatcher to look its account up.
    ids["ivy"] = db.user("ivy@xn--exmple-cua.com")
    ids["ivy_request"] = db.delivery(
        None, None, kind="reset_request", channel="email", destination="ivy@xn--exmple-cua.com",
        payload={"template": "password_reset", "values": {"when": "12:59 on 4 December 2026"}},
        status="queued", minutes=-1, give_up_at=db.at(minutes=59))

    # Gus signs in with an authenticator app, has a passkey and a trusted browser.
    ids["gus"] = gus = db.user("gus@example.com", channel="totp", name="Gus")
    ids["gus_secret"] = secret = pyotp.random_base32()
    db.insert("totp_authenticators", user_id=gus,
              secret_encrypted=fernet(db.secret_key, b"totp-secret").encrypt(
                  secret.encode()).decode(),
              created_at=db.at(days=-10), confirmed_at=db.at(days=-10),
              last_step=None, last_used_at=db.at(days=-2))
    db.insert("passkeys", user_id=gus, credential_id="b2xkLXBhc3NrZXk", public_key=b"\x01" * 77,
              sign_count=3, user_handle="dXNlci1oYW5kbGU", name="Gus's phone",
              transports=["internal", "hybrid"], backed_up=True, created_at=db.at(days=-9),
              last_used_at=db.at(days=-1))
    db.insert("trusted_devices", user_id=gus, token_hash=sha256("a trusted browser"),
              created_at=db.at(days=-2), expires_at=db.at(days=28),
              last_used_at=db.at(days=-1), ended_at=None, end_reason=None, ip="192.0.2.20",
              user_agent="Mozilla/5.0 (iPhone) Safari/17", browser="Safari on iPhone")
    db.insert("address_failures", email_key=sha256("somebody"), kind="wrong",
              created_at=db.at(minutes=-10), paused_until=None)

    # An app registered with `flask oidc add-client`, its signing key, a code and a token.
    # Its client_id in the first OpenID Connect release's shape (no "cg-" in front yet).
    ids["app_client_id"] = client_id = secrets.token_urlsafe(18)
    app_row = db.insert("oauth_clients", client_id=client_id, name="Client files",
                        secret_hash=sha256("an app's secret"),
                        redirect_uris=["https://files.firm.example/oauth2/callback"],
                        post_logout_redirect_uris=[], created_at=db.at(days=-20))
    ids["kid"] = kid = secrets.token_urlsafe(12)
    key = RSAKey.generate_key(2048, parameters={"kid": kid, "use": "sig", "alg": "RS256"},
                              private=True)
    db.insert("oidc_signing_keys", kid=kid,
              private_key_encrypted=fernet(db.secret_key, b"oidc-signing-key").encrypt(
                  json.dumps(key.as_dict(private=True)).encode()).decode(),
              public_jwk=key.as_dict(private=False), created_at=db.at(days=-20),
              retired_at=None)
    session = db.insert("auth_sessions", token_hash=secrets.token_hex(32), user_id=gus,
                        sign_in_id=None, created_at=db.at(minutes=-30),
                        last_seen_at=db.at(minutes=-1), revoked_at=None, ip="192.0.2.20",
                        user_agent="Mozilla/5.0 (iPhone) Safari/17", amr=["otp"])
    code = db.insert("oauth_codes", code_hash=sha256("a used code"), client_id=app_row,
                     user_id=gus, auth_session_id=session,
                     redirect_uri="https://files.firm.example/oauth2/callback",
                     scope="openid email", nonce="n-0S6", code_challenge="x" * 43,
                     code_challenge_method="S256", auth_time=db.at(minutes=-30),
                     amr=["otp"], created_at=db.at(minutes=-29),
                     expires_at=db.at(minutes=-28), used_at=db.at(minutes=-29))
    ids["access_token"] = "an access token issued before the upgrade"
    db.insert("oauth_tokens", token_hash=sha256(ids["access_token"]), client_id=app_row,
              user_id=gus, code_id=code, auth_session_id=session, scope="openid email",
              issued_at=db.at(minutes=-29), expires_at=db.at(minutes=30), revoked_at=None)
    return ids
