"""The database: users, their sign-ins, the delivery outbox, sessions and the audit trail."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Optional

from flask_login import UserMixin
from sqlalchemy import (
    JSON, BigInteger, DateTime, ForeignKey, Index, LargeBinary, String, Text, TypeDecorator,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from extensions import db
from services.clock import now


class UTCDateTime(TypeDecorator):
    """Aware UTC in and out, on SQLite (which keeps no zone) and PostgreSQL alike."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Optional[datetime], dialect) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; use services.clock.now()")
        value = value.astimezone(timezone.utc)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: Optional[datetime], dialect) -> Optional[datetime]:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)


ROLES = ("client", "support", "admin")
# "totp": an authenticator app (services/authenticators/totp.py); nothing is sent. Only the
# client can choose it, by setting the app up, so the command line offers the first two.
CHANNELS = ("email", "sms", "totp")
CLI_CHANNELS = ("email", "sms")


class User(UserMixin, db.Model):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16), default="client")
    channel: Mapped[str] = mapped_column(String(8), default="email")
    phone: Mapped[Optional[str]] = mapped_column(String(20))  # E.164, UK mobile
    phone_verified_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    password_changed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    # Account lockout after repeated failures: how many times, and until when.
    lockout_count: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    # Accounts without a shell: the name staff gave when inviting, and when staff switched
    # the account off (it cannot sign in or get codes until switched on again).
    name: Mapped[Optional[str]] = mapped_column(String(200))
    deactivated_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())

    sign_ins: Mapped[list["SignIn"]] = relationship(
        back_populates="user", order_by="SignIn.created_at.desc()", lazy="dynamic",
        foreign_keys="SignIn.user_id",
    )

    @property
    def is_staff(self) -> bool:
        return self.role in ("support", "admin")

    def is_locked(self, at: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > at

    @property
    def is_active(self) -> bool:
        """Flask-Login's question: a deactivated account has no session and gets no codes."""
        return self.deactivated_at is None

    @property
    def has_password(self) -> bool:
        """False for an invited client who has not chosen a password yet."""
        return bool(self.password_hash)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


# How a sign-in ended. `pending` is the only live state.
SIGNIN_STATUSES = ("pending", "completed", "superseded", "expired", "locked", "cancelled")


class SignIn(db.Model):
    """One password check and the one code that belongs to it."""

    __tablename__ = "sign_ins"
    __table_args__ = (
        Index("ix_sign_ins_user_status", "user_id", "status"),
        # A client's newest sign-ins, a page at a time (support console).
        Index("ix_sign_ins_user_created", "user_id", "created_at"),
        # The dispatcher's sweep for pending sign-ins whose code ran out, every round.
        Index("ix_sign_ins_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    # Indexed so that deleting old sign-ins does not scan the table for each one.
    superseded_by_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("sign_ins.id", ondelete="SET NULL"), index=True
    )
    channel: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(254))
    code_hash: Mapped[str] = mapped_column(String(64))
    # The code encrypted (Fernet) for resends and retries; wiped when the sign-in ends.
    code_encrypted: Mapped[Optional[str]] = mapped_column(Text)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(default=0)
    resend_count: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    ip: Mapped[Optional[str]] = mapped_column(String(64))
    user_agent: Mapped[Optional[str]] = mapped_column(String(512))
    # An app's whole sign-in request may come back through it (blueprints/safety.NEXT_LONGEST).
    # SQLite holds no VARCHAR to its length, so its column stays as first declared.
    next_url: Mapped[Optional[str]] = mapped_column(String(1024).with_variant(String(512),
                                                                              "sqlite"))

    user: Mapped[User] = relationship(back_populates="sign_ins", foreign_keys=[user_id])
    superseded_by: Mapped[Optional["SignIn"]] = relationship(remote_side=[id])
    deliveries: Mapped[list["Delivery"]] = relationship(
        back_populates="sign_in", order_by="Delivery.created_at", cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"

    def __repr__(self) -> str:
        return f"<SignIn {self.id} {self.status}>"


# Delivery states: queued (waiting, perhaps after a failure), sending (claimed by a
# dispatcher), sent (handed to the mail server or Vonage), delivered (receipt came back),
# failed (gave up, with a reason), cancelled (the sign-in ended first).
DELIVERY_STATUSES = ("queued", "sending", "sent", "delivered", "failed", "cancelled")


class Delivery(db.Model):
    """One message in the durable outbox."""

    __tablename__ = "deliveries"
    __table_args__ = (Index("ix_deliveries_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    sign_in_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("sign_ins.id", ondelete="CASCADE"), index=True
    )
    # code, resend, phone_proof, notice
    kind: Mapped[str] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(8))
    destination: Mapped[str] = mapped_column(String(254))
    # What the message says apart from any code: template name and its values.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The code, encrypted, only while the message may still be sent.
    code_encrypted: Mapped[Optional[str]] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    give_up_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    claimed_by: Mapped[Optional[str]] = mapped_column(String(64))
    claimed_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    last_error: Mapped[Optional[str]] = mapped_column(String(500))
    client_ref: Mapped[Optional[str]] = mapped_column(String(40), unique=True)
    provider_ref: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    # A text that went out in several parts: each part's Vonage id and what its receipts said
    # ("sent", "delivered", "failed"); provider_ref is the first part's. NULL for one part.
    provider_parts: Mapped[Optional[dict[str, str]]] = mapped_column(JSON(none_as_null=True))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    sent_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    delivered_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    failed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())

    sign_in: Mapped[Optional[SignIn]] = relationship(back_populates="deliveries")

    def __repr__(self) -> str:
        return f"<Delivery {self.id} {self.kind} {self.channel} {self.status}>"


class PhoneProof(db.Model):
    """A code sent to a new mobile number, which must come back before SMS is the channel."""

    __tablename__ = "phone_proofs"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    phone: Mapped[str] = mapped_column(String(20))
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    failed_attempts: Mapped[int] = mapped_column(default=0)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())


class AuthSession(db.Model):
    """A signed-in browser. The cookie holds a random token; logout revokes the row."""

    __tablename__ = "auth_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # Indexed, like every column pointing at a sign-in, so pruning old sign-ins stays cheap.
    sign_in_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("sign_ins.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    ip: Mapped[Optional[str]] = mapped_column(String(64))
    user_agent: Mapped[Optional[str]] = mapped_column(String(512))
    # How the client proved who they are, as RFC 8176 method names ("pwd", "otp", "sms",
    # "hwk", "mfa", ...): the OpenID Connect `amr` claim and the audit trail read it.
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)

    user: Mapped[User] = relationship()


class Event(db.Model):
    """The audit trail: what happened, to whom, from where. Never a code's digits."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_user_created", "user_id", "created_at"),
        # Recent events of one type across all users (support's list of what went wrong).
        Index("ix_events_type_created", "type", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, index=True)
    type: Mapped[str] = mapped_column(String(40), index=True)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    sign_in_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("sign_ins.id", ondelete="CASCADE"), index=True
    )
    # Indexed so that deleting old messages does not scan the events for each one.
    delivery_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    actor_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    outcome: Mapped[Optional[str]] = mapped_column(String(32))
    ip: Mapped[Optional[str]] = mapped_column(String(64))
    user_agent: Mapped[Optional[str]] = mapped_column(String(512))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)

    def __repr__(self) -> str:
        return f"<Event {self.type} {self.outcome or ''}>"


class AddressFailure(db.Model):
    """A wrong password for an email address, account or not, under a keyed hash of the
    address (services/signin/limits.py, never the address), or the pause it led to.

    Its own small table so that counting one address's failures reads that address's rows
    through an index, the same few rows whether or not the address has an account and
    however many other addresses are being tried (the events' JSON cannot be indexed)."""

    __tablename__ = "address_failures"
    __table_args__ = (
        Index("ix_address_failures_key_created", "email_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email_key: Mapped[str] = mapped_column(String(64))
    # "wrong" (a wrong password) or "paused" (the pause it caused, until `paused_until`).
    kind: Mapped[str] = mapped_column(String(8), default="wrong")
    # Indexed so that forgetting old rows reads only those.
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now, index=True)
    paused_until: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())


class DispatcherBeat(db.Model):
    """Each app process's dispatcher writes its heartbeat here, for /healthz."""

    __tablename__ = "dispatcher_beats"

    worker: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)


# --- OpenID Connect provider (services/federation/oidc.py) ------------------------------

class OAuthClient(db.Model):
    """An app that signs its users in through ClientGate (a relying party)."""

    __tablename__ = "oauth_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    client_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(120))
    # SHA-256 of the secret (32 random bytes, so a fast hash is enough); None: a public client.
    secret_hash: Mapped[Optional[str]] = mapped_column(String(64))
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)

    @property
    def is_public(self) -> bool:
        return self.secret_hash is None

    def __repr__(self) -> str:
        return f"<OAuthClient {self.client_id} {self.name!r}>"


class OAuthCode(db.Model):
    """An authorization code: single use, short lived, stored as a hash."""

    __tablename__ = "oauth_codes"

    id: Mapped[int] = mapped_column(primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    auth_session_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="SET NULL"), index=True)
    redirect_uri: Mapped[str] = mapped_column(String(512))
    scope: Mapped[str] = mapped_column(String(255), default="")
    nonce: Mapped[Optional[str]] = mapped_column(String(255))
    code_challenge: Mapped[Optional[str]] = mapped_column(String(128))
    code_challenge_method: Mapped[Optional[str]] = mapped_column(String(10))
    auth_time: Mapped[datetime] = mapped_column(UTCDateTime())
    amr: Mapped[list[str]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())

    client: Mapped[OAuthClient] = relationship()
    user: Mapped[User] = relationship()


class OAuthToken(db.Model):
    """An access token given to an app for the userinfo endpoint, stored as a hash."""

    __tablename__ = "oauth_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[int] = mapped_column(
        ForeignKey("oauth_clients.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The code it was issued for: a replayed code revokes what it issued (RFC 9700 4.5).
    code_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("oauth_codes.id", ondelete="SET NULL"), index=True)
    auth_session_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("auth_sessions.id", ondelete="SET NULL"), index=True)
    scope: Mapped[str] = mapped_column(String(255), default="")
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())

    client: Mapped[OAuthClient] = relationship()
    user: Mapped[User] = relationship()


class OIDCSigningKey(db.Model):
    """An RSA key that signs id_tokens; the private half Fernet-encrypted under SECRET_KEY."""

    __tablename__ = "oidc_signing_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    # Set when a newer key replaced it; it stays published until its last id_token expired.
    retired_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())


# --- Accounts without a shell (services/accounts/) ---------------------------------------

# What a link in a message is for, and how long it works.
TOKEN_PURPOSES = ("invitation", "reset", "email")


class AccountToken(db.Model):
    """A single-use link (invitation, password reset, new email proof); only its hash is kept.

    `bound_to` is a fingerprint of the account when the link was made (its email, password
    hash and whether it is active), so a link dies when any of them changes.
    """

    __tablename__ = "account_tokens"
    __table_args__ = (Index("ix_account_tokens_user_purpose", "user_id", "purpose"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    purpose: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    bound_to: Mapped[str] = mapped_column(String(64))
    # For an email change: the address the link proves.
    new_email: Mapped[Optional[str]] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    revoked_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    created_by_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )

    user: Mapped[User] = relationship(foreign_keys=[user_id])

    def __repr__(self) -> str:
        return f"<AccountToken {self.id} {self.purpose}>"

# --- Fewer codes: passkeys, authenticator apps, trusted devices (services/authenticators) ---

class Passkey(db.Model):
    """A WebAuthn credential (a passkey) a client registered, named by them."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # base64url of the credential id (at most 1023 bytes, so at most 1364 characters).
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's signature counter; one that goes backwards suggests a cloned key.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # The random WebAuthn user handle (base64url), the same for all of a user's passkeys.
    user_handle: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(60))
    transports: Mapped[list[str]] = mapped_column(JSON, default=list)
    backed_up: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())


class WebAuthnChallenge(db.Model):
    """A challenge handed to a browser, used at most once, in the database so any server
    process can check the answer (the session cookie holds only a random handle to it)."""

    __tablename__ = "webauthn_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    handle_hash: Mapped[str] = mapped_column(String(64), unique=True)
    purpose: Mapped[str] = mapped_column(String(16))  # "register" or "sign_in"
    user_id: Mapped[Optional[int]] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), index=True)
    challenge: Mapped[str] = mapped_column(String(128))  # base64url
    name: Mapped[Optional[str]] = mapped_column(String(60))  # the new passkey's name
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


class TotpAuthenticator(db.Model):
    """A client's authenticator app: its secret (encrypted) and the last time step used."""

    __tablename__ = "totp_authenticators"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    # None until the first code from the app has come back.
    confirmed_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    # The newest 30-second step whose code was accepted: no step is accepted twice.
    last_step: Mapped[Optional[int]] = mapped_column(BigInteger)
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())


class TrustedDevice(db.Model):
    """A browser where the client ticked "don't ask for a code on this device for 30 days"."""

    __tablename__ = "trusted_devices"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=now)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    ended_at: Mapped[Optional[datetime]] = mapped_column(UTCDateTime())
    end_reason: Mapped[Optional[str]] = mapped_column(String(32))
    ip: Mapped[Optional[str]] = mapped_column(String(64))
    user_agent: Mapped[Optional[str]] = mapped_column(String(512))
    # The browser and system it was marked on ("Chrome|Linux"): the mark is refused elsewhere.
    browser: Mapped[str] = mapped_column(String(120), default="")
