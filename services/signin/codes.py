"""The rules of one-time codes, and nowhere else: making, hashing, checking, resending.

A code belongs to one sign-in (one password check). It is 6 digits from `secrets`, lives
10 minutes, is used once, and is stored only as an HMAC keyed from SECRET_KEY. The plaintext
is kept Fernet-encrypted for resends and retries until the sign-in ends, then wiped.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import String, bindparam, case, or_, select, update
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from extensions import db
from models import Delivery, Event, SignIn, User
from services import audit, clock, delivery, keys
from services.authenticators import totp

CODE_DIGITS = 6
CODE_LIFETIME = timedelta(minutes=10)
MAX_WRONG_CODES = 5
RESEND_COOLDOWN = timedelta(seconds=30)
MAX_RESENDS = 3
# How far back a typed code is compared with earlier sign-ins, to name the mistake.
EARLIER_CODE_LOOKBACK = timedelta(hours=24)

# Outcomes of a code entry, as recorded in the audit trail.
ACCEPTED, WRONG, SUPERSEDED, EXPIRED, LOCKED, USED = (
    "accepted", "wrong", "superseded", "expired", "locked", "used",
)
# An authenticator app's code for a time step already used (services/authenticators/totp.py).
REPLAYED = "replayed"
# What a sign-in by authenticator app shows where others show the masked address.
TOTP_DESTINATION = "authenticator app"


# --- primitives -----------------------------------------------------------------------

def new_code() -> str:
    """Six random digits."""
    return f"{secrets.randbelow(10 ** CODE_DIGITS):0{CODE_DIGITS}d}"


def hash_code(scope: str, code: str) -> str:
    """The keyed hash stored for a code; `scope` binds it to one sign-in or proof."""
    message = f"{scope}:{code}".encode()
    return hmac.new(keys.derived_key(b"code-hmac"), message, hashlib.sha256).hexdigest()


def code_matches(scope: str, code: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_code(scope, code), stored_hash)


_SEPARATORS = re.compile(r"[\s\-\u2010-\u2015\u2212.·•_]+")


def normalise_code(raw: str | None) -> Optional[str]:
    """The code as people copy it ("123 456", "123-456", full-width digits) as 6 ASCII digits.

    A copied code brings invisible characters with it (zero-width spaces, direction marks,
    a byte order mark), or the "#" of a text message's last line; a whole message pasted
    ("Your code is 123456") gives its one number of six digits."""
    if not raw:
        return None
    text = unicodedata.normalize("NFKC", raw)
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Cf")
    text = _SEPARATORS.sub("", text)
    if len(text) == CODE_DIGITS and text.isascii() and text.isdigit():
        return text
    numbers = set(re.findall(r"[0-9]+", text))
    if len(numbers) == 1 and len(next(iter(numbers))) == CODE_DIGITS:
        return numbers.pop()
    return None


def sign_in_scope(sign_in_id: int) -> str:
    return f"signin:{sign_in_id}"


def proof_scope(proof_id: int) -> str:
    """A phone proof's codes are hashed apart from any sign-in's."""
    return f"proof:{proof_id}"


# --- the sign-in lifecycle ------------------------------------------------------------

def hold_account(user: User) -> None:
    """Lock the account's row until commit (PostgreSQL; on SQLite the database's write lock,
    see db_setup.py), so that requests for one account which must not interleave (sending
    codes, starting a sign-in or a phone proof, answering "keep or new") run one after another.
    NO KEY UPDATE (key_share): the audit event a request has already written holds a key-share
    lock on the row, and FOR UPDATE would deadlock with another request holding one too."""
    db.session.connection().execute(_HOLD_ACCOUNT, {"user": user.id})


_users = User.__table__
_HOLD_ACCOUNT = select(_users.c.id).where(_users.c.id == bindparam("user")).with_for_update(
    key_share=True)


def end_sign_in(sign_in: SignIn, status: str, at: Optional[datetime] = None) -> bool:
    """End a pending sign-in: wipe the code it kept and cancel messages not yet sent.

    Two plain UPDATEs, written at once (as audit.record does): ending a sign-in is on the
    path of every code typed, and the ORM's unit of work would cost several times the
    statements. The loaded sign-in is told its new values as the database's, so nothing of
    them is written again at the flush; a rollback expires it with the rest of the session.

    False, changing nothing, when another request ended it first: on PostgreSQL a new
    sign-in may read this one as pending while a right code is being accepted for it, and
    its UPDATE, waiting for that row, must not then turn "completed" into "superseded". The
    caller records nothing for it then.
    """
    at = at or clock.now()
    connection = db.session.connection()
    ended = connection.execute(
        _END_SIGN_IN, {"sign_in": sign_in.id, "new_status": status, "at": at}).rowcount == 1
    if not ended:
        db.session.expire(sign_in)  # read what the other request wrote, when next used
        return False
    for name, value in (("status", status), ("ended_at", at), ("code_encrypted", None)):
        set_committed_value(sign_in, name, value)
    # One UPDATE: messages not yet sent are cancelled, and no message keeps the code.
    connection.execute(_END_MESSAGES, {"sign_in": sign_in.id, "reason": f"sign-in {status}"})
    # A message of this sign-in already loaded here reads its new state from the database
    # when next used.
    for loaded in list(db.session.identity_map.values()):
        if isinstance(loaded, Delivery) and loaded.sign_in_id == sign_in.id:
            db.session.expire(loaded, ["status", "last_error", "code_encrypted"])
    return True


_sign_ins, _deliveries = SignIn.__table__, Delivery.__table__
_END_SIGN_IN = (
    update(_sign_ins).where(_sign_ins.c.id == bindparam("sign_in"),
                            _sign_ins.c.status == "pending")
    .values(status=bindparam("new_status"), ended_at=bindparam("at"), code_encrypted=None)
)
_SET_CODE_HASH = (update(_sign_ins).where(_sign_ins.c.id == bindparam("sign_in"))
                  .values(code_hash=bindparam("new_hash")))
_unsent = _deliveries.c.status.in_(("queued", "sending"))
_END_MESSAGES = (
    update(_deliveries)
    .where(_deliveries.c.sign_in_id == bindparam("sign_in"),
           or_(_unsent, _deliveries.c.code_encrypted.is_not(None)))
    .values(status=case((_unsent, "cancelled"), else_=_deliveries.c.status),
            last_error=case((_unsent, bindparam("reason", type_=String)),
                            else_=_deliveries.c.last_error),
            code_encrypted=None)
)


def expire_if_due(sign_in: SignIn) -> bool:
    """Mark a pending sign-in expired once its code's 10 minutes are over."""
    if sign_in.is_pending and clock.now() >= sign_in.expires_at \
            and end_sign_in(sign_in, "expired", at=sign_in.expires_at):
        audit.record("signin_expired", user_id=sign_in.user_id, sign_in_id=sign_in.id)
        return True
    return False


def expire_due_sign_ins(limit: int = 200) -> int:
    """Sweep: end every pending sign-in whose code has run out (called by the dispatcher)."""
    due_now = (SignIn.status == "pending", SignIn.expires_at <= clock.now())
    # A plain read first: most rounds find nothing, and must not take SQLite's write lock.
    if not db.session.scalars(select(SignIn.id).where(*due_now).limit(1)).first():
        return 0
    # Every dispatcher, on every server, sweeps: lock the rows and skip those another one
    # holds (PostgreSQL), so each sign-in is ended, and its audit event written, once.
    due = db.session.scalars(
        select(SignIn).where(*due_now).limit(limit)
        .with_for_update(skip_locked=True, key_share=True)
    ).all()
    for sign_in in due:
        expire_if_due(sign_in)
    return len(due)


def _code_still_wanted(item: Delivery) -> Optional[str]:
    """Asked by the dispatcher before it sends a code: none goes out for an ended sign-in."""
    sign_in = item.sign_in
    if sign_in is not None and (not sign_in.is_pending or expire_if_due(sign_in)):
        return "sign-in ended"
    return None


# The outbox sends what it is given; these are the rules it must ask about codes.
delivery.PREPARERS["code"] = delivery.PREPARERS["resend"] = _code_still_wanted
delivery.SWEEPS.append(expire_due_sign_ins)


def pending_sign_in_of(user: User) -> Optional[SignIn]:
    """The user's live sign-in, if any (the newest pending one whose code has not run out).

    One whose code this server can no longer check is ended instead: made before SECRET_KEY
    was changed, its code (kept encrypted, or the authenticator app's secret) cannot be read,
    so "use the code already sent" would lead only to codes that are "not right" and count
    towards the lock."""
    sign_in = db.session.scalar(_NEWEST_PENDING, {"user": user.id})
    if sign_in is None or expire_if_due(sign_in):
        return None
    if not _checkable_here(sign_in):
        if end_sign_in(sign_in, "cancelled"):
            audit.record("signin_cancelled", user_id=user.id, sign_in_id=sign_in.id,
                         detail={"by": "secret_key"})
        return None
    return sign_in


def _checkable_here(sign_in: SignIn) -> bool:
    if sign_in.channel == "totp":
        return totp.confirmed_authenticator(sign_in.user) is not None
    return not sign_in.code_encrypted or keys.decrypt_secret(sign_in.code_encrypted) is not None


# A user's pending sign-ins: asked on every password post, so built once.
_PENDING = select(SignIn).where(SignIn.user_id == bindparam("user"), SignIn.status == "pending")
_NEWEST_PENDING = _PENDING.order_by(SignIn.created_at.desc(), SignIn.id.desc()).limit(1)
_OTHER_PENDING = _PENDING.where(SignIn.id != bindparam("sign_in"))


def destination_for(user: User, channel: str) -> str:
    if channel == "totp":
        return TOTP_DESTINATION
    return user.phone if channel == "sms" else user.email


def channel_for(user: User) -> str:
    """How this sign-in's code comes: the user's choice while it can work, else email."""
    # Without Vonage (production), an SMS client gets the code by email; the code page says so.
    if user.channel == "sms" and user.phone and delivery.sms_offered():
        return "sms"
    if user.channel == "totp":
        if totp.confirmed_authenticator(user) is not None:
            return "totp"
    return "email"


def start_sign_in(
    user: User,
    *,
    ip: Optional[str] = None,
    user_agent: Optional[str] = None,
    next_url: Optional[str] = None,
) -> SignIn:
    """A password check succeeded: make a new code, end earlier pending sign-ins, queue it.

    Call it after `limits.refuse_new_code` found nothing against it, in the same transaction:
    that took the account's row lock (PostgreSQL; on SQLite the write lock, see db_setup.py),
    which makes two sign-ins at once leave exactly one pending."""
    at = clock.now()
    channel = channel_for(user)
    # An authenticator app makes its own codes: nothing is made, kept or sent here.
    code = new_code() if channel != "totp" else None
    sign_in = SignIn(
        user_id=user.id,
        created_at=at,
        status="pending",
        channel=channel,
        destination=destination_for(user, channel),
        code_hash="",
        code_encrypted=keys.encrypt_secret(code) if code else None,
        expires_at=at + CODE_LIFETIME,
        last_sent_at=at,
        ip=audit.clip(ip, 64),
        user_agent=audit.clip(user_agent, 512),
        next_url=next_url,
    )
    db.session.add(sign_in)
    db.session.flush()  # gives the sign-in its id, which the code's hash is bound to
    if code:
        # Written at once, as end_sign_in writes: nothing is left for another flush.
        code_hash = hash_code(sign_in_scope(sign_in.id), code)
        db.session.connection().execute(_SET_CODE_HASH, {"sign_in": sign_in.id,
                                                         "new_hash": code_hash})
        set_committed_value(sign_in, "code_hash", code_hash)
    earlier = db.session.scalars(_OTHER_PENDING, {"user": user.id, "sign_in": sign_in.id}).all()
    for old in earlier:
        if not end_sign_in(old, "superseded", at=at):
            continue  # accepted, or ended, by another request meanwhile
        old.superseded_by_id = sign_in.id
        audit.record(
            "signin_superseded", user_id=user.id, sign_in_id=old.id,
            detail={"by_sign_in": sign_in.id},
        )
    audit.record("signin_started", user_id=user.id, sign_in_id=sign_in.id,
                 detail={"channel": channel})
    if code:
        delivery.queue_code(sign_in, kind="code", made_at=at)
    return sign_in


def answer_question_once(user: User, sign_in_id: int, asked_at: datetime, action: str) -> bool:
    """Record the answer to "keep the code sent to your other window, or a new one?" unless
    that question was answered already; the caller commits. The browser's cookie can be
    replayed, so the record of the answer lives here, under the account's row lock."""
    hold_account(user)
    answered = db.session.scalar(
        select(Event.id).where(
            Event.type == "choice_answered", Event.user_id == user.id,
            Event.sign_in_id == sign_in_id, Event.created_at >= asked_at,
        ).limit(1)
    )
    if answered is not None:
        return False
    audit.record("choice_answered", user_id=user.id, sign_in_id=sign_in_id,
                 detail={"action": action})
    return True


@dataclass
class CodeCheck:
    """What came of one code entry, with what a message to the client needs."""

    outcome: str
    sign_in: Optional[SignIn] = None
    tries_left: int = 0
    earlier: Optional[SignIn] = None  # the sign-in an older code belonged to
    newer: Optional[SignIn] = None  # the sign-in that replaced this one
    steps_off: int = 0  # an app's code from another time step: its clock is this far off


def newest_successor(sign_in: SignIn) -> Optional[SignIn]:
    """Follow superseded_by to the sign-in that replaced this one last."""
    newer = sign_in.superseded_by
    for _ in range(50):
        if newer is None or newer.superseded_by is None:
            break
        newer = newer.superseded_by
    return newer


# The code page's poll, on its fast path (blueprints/auth.py): the sign-in and its newest
# message (the one delivery.latest_for picks) in one row. Core, not ORM objects: every waiting
# code page asks every few seconds, and building two ORM objects cost more than the query.
_newest_message = (
    select(_deliveries.c.id).where(_deliveries.c.sign_in_id == _sign_ins.c.id)
    .order_by(*delivery.NEWEST_FIRST).limit(1)
    .correlate(_sign_ins).scalar_subquery()
)
STATUS_LOOKUP = (
    select(*(_sign_ins.c[name] for name in (
               "id", "user_id", "status", "channel", "destination", "created_at", "expires_at",
               "ended_at", "last_sent_at", "resend_count")),
           *(_deliveries.c[name].label(f"message_{name}") for name in (
               "id", "status", "channel", "attempts", "last_error", "created_at", "sent_at")))
    .select_from(_sign_ins.outerjoin(_deliveries, _deliveries.c.id == _newest_message))
    .where(_sign_ins.c.id == bindparam("sign_in_id"))
)


def _earlier_sign_in_with(sign_in: SignIn, code: str) -> Optional[SignIn]:
    """An earlier sign-in of the same user whose code this is, within the look-back."""
    candidates = db.session.scalars(
        select(SignIn)
        .where(
            SignIn.user_id == sign_in.user_id,
            SignIn.id != sign_in.id,
            SignIn.created_at >= clock.now() - EARLIER_CODE_LOOKBACK,
            SignIn.status.in_(("superseded", "expired")),
        )
        .order_by(SignIn.created_at.desc())
        .limit(20)
    ).all()
    for candidate in candidates:
        if code_matches(sign_in_scope(candidate.id), code, candidate.code_hash):
            return candidate
    return None


def lock_sign_in(sign_in_id: int) -> Optional[SignIn]:
    """Lock a sign-in (PostgreSQL's row lock, SQLite's write lock) and read it afresh, so
    codes typed at the same moment are judged one after the other: the right code signs in
    once, and every wrong one counts towards the five. (NO KEY UPDATE, as in
    hold_account.) One statement locks and reads the sign-in afresh (populate_existing
    overwrites what this session had loaded of the row). The user comes in the same query:
    judging a code asks whether the account is locked.

    The account's row is held first (hold_account), the order every other path takes them
    in: a wrong code counts against the account (limits.note_failure) while a new sign-in of
    the account, which holds the account, ends this one. In the other order the two deadlock
    on PostgreSQL, and one client gets an error page."""
    db.session.connection().execute(_HOLD_ACCOUNT_OF_SIGN_IN, {"sign_in": sign_in_id})
    return db.session.scalars(_LOCK_SIGN_IN, {"sign_in": sign_in_id}).one_or_none()


_HOLD_ACCOUNT_OF_SIGN_IN = select(_users.c.id).where(
    _users.c.id == select(SignIn.user_id).where(SignIn.id == bindparam("sign_in"))
    .scalar_subquery()).with_for_update(key_share=True)


_LOCK_SIGN_IN = (
    select(SignIn).options(joinedload(SignIn.user, innerjoin=True))
    .where(SignIn.id == bindparam("sign_in")).with_for_update(of=SignIn, key_share=True)
    .execution_options(populate_existing=True)
)


def check_code(sign_in: SignIn, code: str, *, locked: bool = False) -> CodeCheck:
    """Judge a well-formed code typed for this sign-in, and record the outcome. `locked`: the
    caller read the sign-in with `lock_sign_in` in this transaction."""
    if not locked:
        lock_sign_in(sign_in.id)
    check = _judge(sign_in, code)
    detail = {"earlier_sign_in": check.earlier.id} if check.earlier else {}
    if check.steps_off:
        detail["steps_off"] = check.steps_off
    audit.record(
        "code_entry", user_id=sign_in.user_id, sign_in_id=sign_in.id, outcome=check.outcome,
        detail=detail,
    )
    return check


def _judge(sign_in: SignIn, code: str) -> CodeCheck:
    if sign_in.status == "superseded":
        return CodeCheck(SUPERSEDED, sign_in, newer=newest_successor(sign_in))
    if sign_in.status == "completed":
        return CodeCheck(USED, sign_in)
    if sign_in.status in ("locked", "cancelled"):
        return CodeCheck(LOCKED, sign_in)
    if sign_in.status == "expired" or expire_if_due(sign_in):
        return CodeCheck(EXPIRED, sign_in)
    if sign_in.user.is_locked(clock.now()):
        return CodeCheck(LOCKED, sign_in)

    if sign_in.channel == "totp":
        return _judge_app_code(sign_in, code)
    if code_matches(sign_in_scope(sign_in.id), code, sign_in.code_hash):
        end_sign_in(sign_in, "completed")
        return CodeCheck(ACCEPTED, sign_in)

    earlier = _earlier_sign_in_with(sign_in, code)
    if earlier is not None:
        # An honest mix-up, not a guess: say which code it was and do not count it.
        return CodeCheck(SUPERSEDED, sign_in, earlier=earlier,
                         tries_left=MAX_WRONG_CODES - sign_in.failed_attempts)

    return _count_wrong(sign_in)


def _count_wrong(sign_in: SignIn, steps_off: int = 0) -> CodeCheck:
    sign_in.failed_attempts += 1
    if sign_in.failed_attempts >= MAX_WRONG_CODES:
        end_sign_in(sign_in, "locked")
        return CodeCheck(LOCKED, sign_in, steps_off=steps_off)
    return CodeCheck(WRONG, sign_in, tries_left=MAX_WRONG_CODES - sign_in.failed_attempts,
                     steps_off=steps_off)


def _judge_app_code(sign_in: SignIn, code: str) -> CodeCheck:
    """A code from the client's authenticator app, judged by its secret and the clock."""
    found = totp.confirmed_authenticator(sign_in.user)
    if found is None:  # the app was removed while this sign-in waited
        return _count_wrong(sign_in)
    result = totp.check_code(found, code)
    if result.outcome == totp.ACCEPTED:
        end_sign_in(sign_in, "completed")
        return CodeCheck(ACCEPTED, sign_in)
    if result.outcome == totp.REPLAYED:
        # A real code, already used once: not a guess, so not counted, but never accepted.
        return CodeCheck(REPLAYED, sign_in, tries_left=MAX_WRONG_CODES - sign_in.failed_attempts)
    return _count_wrong(sign_in, result.steps_off)


# Why a sign-in was ended before its code was entered (its signin_cancelled event's "by"), for
# the client on its code page: the page of whoever started it, so it blames no one.
CANCELLED_BECAUSE = {
    "client": "“Sign out everywhere else” was chosen on the account",
    "password": "the account's password was changed",
    "email": "the account's sign-in email address was changed",
    "deactivated": "the account was switched off",
    "passkey": "the account was signed in to with a passkey instead",
    "device": "the account was signed in to on a browser that skips the code",
    "totp_removed": "the authenticator app was removed from the account",
    "recovered": "our staff secured the account after a call from its owner",
    "support": "our support team ended it",
    "secret_key": "our server's settings were changed",
}


def cancelled_because(sign_in: SignIn) -> Optional[str]:
    """Why this cancelled sign-in was ended, in words for its code page; None if not known."""
    detail = db.session.scalar(
        select(Event.detail).where(Event.sign_in_id == sign_in.id,
                                   Event.type == "signin_cancelled").limit(1))
    return CANCELLED_BECAUSE.get(detail.get("by")) if isinstance(detail, dict) else None


def end_pending_sign_ins(user: User, *, by: str, actor_id: Optional[int] = None,
                         channel: Optional[str] = None) -> int:
    """End the user's sign-ins still waiting for a code (those of one channel, if given), so
    those codes stop working."""
    waiting = db.session.scalars(
        select(SignIn).where(SignIn.user_id == user.id, SignIn.status == "pending",
                             *([SignIn.channel == channel] if channel else []))
    ).all()
    ended = [sign_in for sign_in in waiting if end_sign_in(sign_in, "cancelled")]
    for sign_in in ended:
        audit.record("signin_cancelled", user_id=user.id, sign_in_id=sign_in.id,
                     actor_id=actor_id, detail={"by": by})
    return len(ended)


@dataclass
class ResendResult:
    ok: bool
    reason: str = ""  # "cooldown", "limit", "ended"
    wait_seconds: int = 0
    resends_left: int = 0
    switched: bool = False  # sent by another channel this time


def resend_wait(sign_in: SignIn) -> int:
    """Seconds until a resend is allowed (0 when it is)."""
    if sign_in.last_sent_at is None:
        return 0
    remaining = sign_in.last_sent_at + RESEND_COOLDOWN - clock.now()
    return max(0, int(remaining.total_seconds() + 0.999))


def resend_code(sign_in: SignIn, *, channel: Optional[str] = None) -> ResendResult:
    """Send the same code of this sign-in again, by its channel or by `channel` instead."""
    if sign_in.is_pending and sign_in.channel == "totp" and not expire_if_due(sign_in):
        switched = _app_to_email(sign_in)
        if switched is not None:
            return switched
        # Another request switched it to email a moment ago: this one is an ordinary
        # resend of that code, so it meets the cooldown rather than making a second code.
    if not sign_in.is_pending or expire_if_due(sign_in) or not sign_in.code_encrypted:
        return ResendResult(False, "ended")
    switching = channel is not None and channel != sign_in.channel
    # One conditional UPDATE counts the resend and starts the cooldown: of several resends
    # posted at once, only one finds the row still due, however many workers read it before.
    # A switch of channel is a resend too (SPEC: cooldown 30 s, at most 3), even after the
    # message by the first channel failed.
    at = clock.now()
    claimed = db.session.execute(
        update(SignIn)
        .where(SignIn.id == sign_in.id, SignIn.status == "pending",
               SignIn.resend_count < MAX_RESENDS,
               or_(SignIn.last_sent_at.is_(None), SignIn.last_sent_at <= at - RESEND_COOLDOWN))
        .values(resend_count=SignIn.resend_count + 1, last_sent_at=at)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    db.session.refresh(sign_in)
    if not claimed:
        if not sign_in.is_pending:
            return ResendResult(False, "ended")
        if sign_in.resend_count >= MAX_RESENDS:
            return ResendResult(False, "limit")
        return ResendResult(False, "cooldown", wait_seconds=max(1, resend_wait(sign_in)),
                            resends_left=MAX_RESENDS - sign_in.resend_count)
    if switching:
        sign_in.channel = channel
        sign_in.destination = destination_for(sign_in.user, channel)
    # The same code: every code lives CODE_LIFETIME from when it was made.
    delivery.queue_code(sign_in, kind="resend", made_at=sign_in.expires_at - CODE_LIFETIME)
    audit.record("code_resend", user_id=sign_in.user_id, sign_in_id=sign_in.id,
                 detail={"channel": sign_in.channel, "count": sign_in.resend_count})
    return ResendResult(True, resends_left=MAX_RESENDS - sign_in.resend_count,
                        switched=switching)


def _app_to_email(sign_in: SignIn) -> Optional[ResendResult]:
    """"Send a code by email instead" on an authenticator app's code page: this sign-in
    gets a code of its own, by email, and follows the email rules from then on.

    One conditional UPDATE makes the switch: of several clicks posted at once only one finds
    the sign-in still waiting for the app, so one code is made and emailed. The others get
    None (with the sign-in read afresh) and go on as resends of that code."""
    at = clock.now()
    code = new_code()
    switched = db.session.execute(
        update(SignIn)
        .where(SignIn.id == sign_in.id, SignIn.channel == "totp", SignIn.status == "pending")
        .values(channel="email", destination=sign_in.user.email,
                code_hash=hash_code(sign_in_scope(sign_in.id), code),
                code_encrypted=keys.encrypt_secret(code), last_sent_at=at,
                expires_at=at + CODE_LIFETIME)
        .execution_options(synchronize_session=False)
    ).rowcount == 1
    db.session.refresh(sign_in)
    if not switched:
        return None
    delivery.queue_code(sign_in, kind="code", made_at=at)
    audit.record("code_resend", user_id=sign_in.user_id, sign_in_id=sign_in.id,
                 detail={"channel": "email", "instead_of": "totp"})
    return ResendResult(True, resends_left=MAX_RESENDS - sign_in.resend_count)
