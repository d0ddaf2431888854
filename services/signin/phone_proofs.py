"""Proving a mobile number, and the changes to how a client gets codes that follow from it.

A number becomes the account's only once a code sent to it by SMS has come back: a mistyped
number, or somebody else's, never becomes where sign-in codes go. A proof's code follows the
rules of every code (services/signin/codes.py): 6 digits, 10 minutes, 5 wrong tries, stored only as
a keyed hash. Every change is recorded and announced by email to the account's address.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import func, select, update

from extensions import db
from models import Delivery, Event, PhoneProof, User
from services import audit, clock, delivery, keys
from services.signin import codes, limits, sessions
from services.masking import mask_phone
from services.phones import check_uk_mobile

PROOF_LIFETIME = codes.CODE_LIFETIME
MAX_WRONG_CODES = codes.MAX_WRONG_CODES
PROOF_COOLDOWN = codes.RESEND_COOLDOWN
# Each proof is a paid text message to a number we do not know yet: cap them per account.
MAX_PROOFS_PER_HOUR = 5

ACCEPTED, WRONG, EXPIRED, LOCKED, NONE = "accepted", "wrong", "expired", "locked", "none"

# Changing how codes arrive asks for the password again unless the sign-in is this recent.
REAUTH_WINDOW = timedelta(minutes=10)
# Wrong passwords for one session before it is ended: a stolen session gets no further.
MAX_WRONG_PASSWORDS = 5


# --- the proof ------------------------------------------------------------------------

def _end(proof: PhoneProof, status: str, at: Optional[datetime] = None) -> None:
    """End a pending proof and stop its text message if it has not gone yet."""
    proof.status = status
    proof.ended_at = at or clock.now()
    db.session.execute(
        update(Delivery)
        .where(Delivery.user_id == proof.user_id, Delivery.kind == "phone_proof",
               Delivery.status.in_(("queued", "sending")))
        .values(status="cancelled", code_encrypted=None, last_error=f"number check {status}")
    )


def _latest(user: User, *, locked: bool = False) -> Optional[PhoneProof]:
    """The account's newest proof; `locked` reads it afresh under its row lock (PostgreSQL;
    SQLite's write lock), as check_proof needs: codes typed at the same moment are then
    judged one after another, so every wrong one counts towards the five. (NO KEY UPDATE
    and populate_existing, as codes.lock_sign_in.)"""
    query = (select(PhoneProof).where(PhoneProof.user_id == user.id)
             .order_by(PhoneProof.created_at.desc(), PhoneProof.id.desc()).limit(1))
    if locked:
        query = query.with_for_update(key_share=True).execution_options(populate_existing=True)
    return db.session.scalar(query)


def _expire_if_due(proof: PhoneProof) -> bool:
    if proof.status == "pending" and clock.now() >= proof.expires_at:
        _end(proof, "expired", at=proof.expires_at)
        audit.record("phone_proof_expired", user_id=proof.user_id)
        return True
    return False


def pending_proof(user: User) -> Optional[PhoneProof]:
    """The number this user is proving now, if its code has not run out."""
    proof = _latest(user)
    if proof is None or proof.status != "pending" or _expire_if_due(proof):
        return None
    return proof


def proof_delivery(proof: PhoneProof) -> Optional[Delivery]:
    """The newest text message of this proof, whose state the page shows."""
    return db.session.scalar(
        select(Delivery).where(
            Delivery.user_id == proof.user_id, Delivery.kind == "phone_proof",
            Delivery.destination == proof.phone, Delivery.created_at >= proof.created_at,
        ).order_by(Delivery.created_at.desc(), Delivery.id.desc()).limit(1)
    )


@dataclass
class ProofStart:
    ok: bool
    proof: Optional[PhoneProof] = None
    reason: str = ""  # "cooldown", "limit", "cap"
    wait_seconds: int = 0
    message: str = ""  # set for "cap": the account's or the address's hourly cap on codes


def start_proof(user: User, phone: str, *, ip: Optional[str] = None) -> ProofStart:
    """Send a new code by SMS to `phone` (E.164, already judged a UK mobile); the caller commits."""
    at = clock.now()
    codes.hold_account(user)  # so two tabs cannot both start a proof
    recent = db.session.scalars(
        select(PhoneProof.created_at).where(
            PhoneProof.user_id == user.id, PhoneProof.created_at > at - timedelta(hours=1))
        .order_by(PhoneProof.created_at)
    ).all()
    if recent and recent[-1] + PROOF_COOLDOWN > at:
        wait = (recent[-1] + PROOF_COOLDOWN - at).total_seconds()
        return ProofStart(False, reason="cooldown", wait_seconds=max(1, int(wait + 0.999)))
    if len(recent) >= MAX_PROOFS_PER_HOUR:
        wait = (recent[0] + timedelta(hours=1) - at).total_seconds()
        return ProofStart(False, reason="limit", wait_seconds=max(1, int(wait + 0.999)))
    # Texts cost money: proofs count towards the same hourly caps as sign-in codes.
    refusal = limits.code_send_refusal(user, ip)
    if refusal is not None:
        return ProofStart(False, reason="cap", wait_seconds=refusal.wait_seconds,
                          message=refusal.message)

    earlier = pending_proof(user)
    if earlier is not None:
        _end(earlier, "superseded", at=at)
    code = codes.new_code()
    proof = PhoneProof(user_id=user.id, phone=phone, code_hash="", created_at=at,
                       expires_at=at + PROOF_LIFETIME, failed_attempts=0, status="pending")
    db.session.add(proof)
    db.session.flush()  # the id the code's hash is bound to
    proof.code_hash = codes.hash_code(codes.proof_scope(proof.id), code)
    delivery.queue_message(
        user_id=user.id, channel="sms", destination=phone, kind="phone_proof",
        template="phone_proof", values={"expires_at": clock.hhmm(proof.expires_at)},
        code_encrypted=keys.encrypt_secret(code), give_up_at=proof.expires_at,
    )
    audit.record("phone_proof_started", user_id=user.id,
                 detail={"phone": mask_phone(phone), "proof": proof.id})
    return ProofStart(True, proof)


def cancel_proof(user: User) -> Optional[PhoneProof]:
    """Stop proving the pending number; nothing about the account changes."""
    proof = pending_proof(user)
    if proof is not None:
        _end(proof, "cancelled")
        audit.record("phone_proof_cancelled", user_id=user.id, detail={"proof": proof.id})
    return proof


@dataclass
class ProofCheck:
    outcome: str
    proof: Optional[PhoneProof] = None
    tries_left: int = 0
    summary: str = ""  # what changed, once accepted


def check_proof(user: User, code: str, *, channel: str) -> ProofCheck:
    """Judge a code typed to prove a number; when right, the number becomes the account's."""
    # The account first, then the proof: the order start_proof takes them in (it holds the
    # account, then ends the earlier proof), so two requests never wait on each other.
    codes.hold_account(user)
    proof = _latest(user, locked=True)
    if proof is None:
        outcome = ProofCheck(NONE)
    elif proof.status == "expired" or _expire_if_due(proof):
        outcome = ProofCheck(EXPIRED, proof)
    elif proof.status == "locked":
        outcome = ProofCheck(LOCKED, proof)
    elif proof.status != "pending":
        outcome = ProofCheck(NONE, proof)
    elif codes.code_matches(codes.proof_scope(proof.id), code, proof.code_hash):
        _end(proof, "proved")
        outcome = ProofCheck(ACCEPTED, proof)
    else:
        proof.failed_attempts += 1
        if proof.failed_attempts >= MAX_WRONG_CODES:
            _end(proof, "locked")
            outcome = ProofCheck(LOCKED, proof)
        else:
            outcome = ProofCheck(WRONG, proof, tries_left=MAX_WRONG_CODES - proof.failed_attempts)
    audit.record("phone_proof_entry", user_id=user.id, outcome=outcome.outcome,
                 detail={"proof": proof.id} if proof else {})
    if outcome.outcome == ACCEPTED:
        outcome.summary = apply_change(
            user, Change("apply", channel=channel, phone=proof.phone, proved=True))
    return outcome


# --- changes to the account -----------------------------------------------------------

@dataclass
class Change:
    """What a submitted settings form asks for.

    action: "none" (nothing differs), "apply" (no new number: do it), "prove" (a new number
    must be proved first), "refuse" (`problem` says why; nothing changes).
    """

    action: str
    channel: str = "email"
    phone: Optional[str] = None
    problem: Optional[str] = None
    proved: bool = False


def plan_change(user: User, channel: str, raw_phone: Optional[str]) -> Change:
    """Work out what the client asked for, judging the number; changes nothing."""
    raw_phone = (raw_phone or "").strip()
    if (channel == "sms" or raw_phone) and not delivery.sms_offered():
        return Change("refuse", problem="Text messages are not available at the moment, so "
                                        "your codes come by email.")
    has_proved_phone = bool(user.phone and user.phone_verified_at)
    if not raw_phone:
        if channel == "sms":
            if not has_proved_phone:
                return Change("refuse", problem="Enter your UK mobile number to get your codes "
                                               "by text message.")
            phone = user.phone
        else:
            phone = None  # an emptied number box means: forget my number
    else:
        judged = check_uk_mobile(raw_phone)
        if not judged.ok:
            return Change("refuse", problem=judged.message)
        phone = judged.e164
        if phone != user.phone or not has_proved_phone:
            return Change("prove", channel=channel, phone=phone)
    if channel == user.channel and phone == user.phone:
        return Change("none", channel=channel, phone=phone)
    return Change("apply", channel=channel, phone=phone)


def describe_change(user: User, change: Change) -> str:
    """One sentence saying what changed, for the page and the notice email."""
    old_phone = user.phone
    parts = []
    if change.phone != old_phone or change.proved:
        if change.phone is None:
            parts.append(f"Your mobile number ending {old_phone[-3:]} was removed.")
        else:
            parts.append(f"Your mobile number for sign-in codes is now {mask_phone(change.phone)}.")
    if change.channel == "sms" and change.phone:
        parts.append(f"Your sign-in codes come by text message to {mask_phone(change.phone)}.")
    elif change.channel == "totp":
        parts.append("Your sign-in codes come from your authenticator app.")
    else:
        parts.append("Your sign-in codes come by email.")
    return " ".join(parts)


def apply_change(user: User, change: Change) -> str:
    """Make the change, record it and email a notice of it; returns the sentence describing it."""
    channel = change.channel if change.channel in ("email", "totp") or change.phone else "email"
    change = Change(change.action, channel=channel, phone=change.phone, proved=change.proved)
    summary = describe_change(user, change)
    before = {"channel": user.channel, "phone": mask_phone(user.phone) or None}
    if change.phone != user.phone or change.proved:
        user.phone = change.phone
        user.phone_verified_at = clock.now() if change.phone else None
    user.channel = channel
    audit.record("security_changed", user_id=user.id, actor_id=user.id,
                 detail={"before": before,
                         "after": {"channel": channel, "phone": mask_phone(user.phone) or None},
                         "number_proved": change.proved})
    notify(user, summary)
    return summary


def _reauth_failures_lately(user: User) -> int:
    """Wrong current passwords of this account, in any session, since its last lock or unlock
    and within the lockout's window. A sign-in does not start the count afresh."""
    since = max(filter(None, (clock.now() - limits.FAILURE_WINDOW, limits.latest_event_at(
        user.id, ("account_locked", "account_unlocked")))))
    return db.session.scalar(select(func.count(Event.id)).where(
        Event.user_id == user.id, Event.type == "reauth_failed", Event.created_at > since)) or 0


def notify(user: User, summary: str) -> Delivery:
    """Email the account's address that its sign-in settings changed."""
    return delivery.queue_message(
        user_id=user.id, channel="email", destination=user.email, kind="notice",
        template="security_change",
        values={"change": summary, "when": clock.local(clock.now()).strftime("%H:%M on %-d %B %Y")},
    )


# --- asking for the password again ----------------------------------------------------

def recently_signed_in(token: Optional[str]) -> bool:
    """True when the session with this token began within REAUTH_WINDOW."""
    started = sessions.started_at(token)
    return started is not None and clock.now() - started <= REAUTH_WINDOW


def wrong_password(user: User, token: Optional[str]) -> int:
    """Record a wrong password given to make a change; returns how many this session has had.

    Counted from the audit trail, not the cookie, so replaying an older cookie resets nothing.
    At MAX_WRONG_PASSWORDS the session is revoked (the caller commits and signs the browser out).
    Across sessions, limits.FAILURES_BEFORE_LOCK of them in a day lock the account as wrong
    passwords at /login do: a session is cheap to get again with a passkey or a trusted
    device, so sessions alone would let the password be guessed five at a time for ever.
    """
    audit.record("reauth_failed", user_id=user.id, outcome="wrong")
    db.session.flush()
    if _reauth_failures_lately(user) >= limits.FAILURES_BEFORE_LOCK:
        limits.lock_account(user)
    since = sessions.started_at(token) or clock.now()
    failures = db.session.scalar(
        select(func.count(Event.id)).where(
            Event.user_id == user.id, Event.type == "reauth_failed", Event.created_at >= since)
    ) or 0
    if failures >= MAX_WRONG_PASSWORDS:
        sessions.revoke(token)
        audit.record("logout", user_id=user.id, detail={"reason": "wrong passwords"})
    return failures
