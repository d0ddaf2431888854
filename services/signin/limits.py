"""Account-wide limits: lockout after repeated failures, caps on codes sent, and request limits.

Three layers, each for a different attack:

* **Request limits** (Flask-Limiter, per IP and per account) slow down anyone hammering the
  password check, the code entry, resends or preference changes. They are counted in memory by
  default, in Redis when RATELIMIT_STORAGE_URI says so, and a limited request gets a 429 page
  that says how long to wait.
* **Lockout** stops guessing spread over time and over many sign-ins: when an account's wrong
  passwords and wrong codes since its last success reach FAILURES_BEFORE_LOCK, sign-in to it is
  paused for a delay that grows with each lock (LOCK_DELAYS). The client is emailed; support
  (or `flask users unlock`) can lift it, and so does a new password set with a link from the
  client's mailbox (a reset or an invitation), which proves it is them.
* **Cost caps** stop anyone running up SMS bills through the sign-in form: no more than so many
  codes per account and per IP address in an hour, counted from the delivery outbox.

Every count is read from the database (Events, Deliveries, and the wrong passwords per
address in AddressFailure), so the rules hold across processes and restarts without any
storage of their own.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Callable, Optional

from flask import current_app, has_request_context, jsonify, request, session
from flask_login import current_user
from sqlalchemy import bindparam, delete, func, select, text

from db_setup import hold_named_lock
from extensions import db, limiter
from models import AddressFailure, Delivery, Event, SignIn, User
from services import addresses, audit, clock, contact, delivery, emails, urls
from services.signin import codes

# --- lockout --------------------------------------------------------------------------

# Wrong passwords plus wrong codes, since the last success, unlock or lock, that lock an account.
FAILURES_BEFORE_LOCK = 10
# Failures older than this no longer count (a forgetful month is not an attack).
FAILURE_WINDOW = timedelta(hours=24)
# The first lock lasts 15 minutes, the next an hour, and so on; the last one repeats.
LOCK_DELAYS = (
    timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4), timedelta(hours=24),
)
# Locks older than this are forgotten when choosing the next delay.
LOCK_MEMORY = timedelta(days=7)

# --- cost caps ------------------------------------------------------------------------

CODE_KINDS = ("code", "resend", "phone_proof")
CAP_WINDOW = timedelta(hours=1)
CODES_PER_ACCOUNT_PER_HOUR = 10
CODES_PER_IP_PER_HOUR = 30

# --- request limits (Flask-Limiter syntax); RATE_LIMITS in the config overrides any -------

DEFAULT_RATE_LIMITS = {
    "login_per_ip": "10 per minute;100 per hour",
    "login_per_account": "5 per minute;20 per hour",
    "code_per_ip": "20 per minute;200 per hour",
    "code_per_account": "10 per minute;30 per hour",
    "resend_per_ip": "10 per minute;60 per hour",
    "resend_per_account": "5 per minute;20 per hour",
    "preferences_per_ip": "20 per minute;100 per hour",
    "preferences_per_account": "10 per minute;30 per hour",
    # Passkey sign-in: each try costs a challenge row and a signature check, never a message.
    "passkey_per_ip": "20 per minute;200 per hour",
}


# --- waits, in words ------------------------------------------------------------------

def wait_in_words(seconds: float) -> str:
    """"45 seconds", "3 minutes", "2 hours and 5 minutes": how long a person has to wait."""
    seconds = max(1, math.ceil(seconds))
    if seconds < 60:
        return f"{seconds} second{'s' if seconds != 1 else ''}"
    minutes = math.ceil(seconds / 60)
    if minutes < 60:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours, minutes = divmod(minutes, 60)
    text = f"{hours} hour{'s' if hours != 1 else ''}"
    if minutes:
        text += f" and {minutes} minute{'s' if minutes != 1 else ''}"
    return text


@dataclass
class Refusal:
    """Why a request was refused, and until when: the page shows `message`, status 429."""

    reason: str  # "locked", "account_cap", "ip_cap"
    until: datetime
    message: str

    @property
    def wait_seconds(self) -> int:
        return max(1, math.ceil((self.until - clock.now()).total_seconds()))

    @property
    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.wait_seconds)}


# --- lockout --------------------------------------------------------------------------

def latest_event_at(user_id: int, types: tuple[str, ...]) -> Optional[datetime]:
    return db.session.scalar(
        select(func.max(Event.created_at)).where(Event.user_id == user_id, Event.type.in_(types))
    )


def _failures_since(user_id: int, since: datetime) -> int:
    """Wrong passwords (audit events) plus wrong codes (counted on each sign-in) since `since`."""
    wrong_passwords = db.session.scalar(
        select(func.count(Event.id)).where(
            Event.user_id == user_id, Event.type == "password_failed", Event.created_at > since,
        )
    ) or 0
    # A sign-in's wrong codes all fall after it started, and a lock, success or unlock ends
    # every pending sign-in, so counting sign-ins started after `since` counts the right codes.
    wrong_codes = db.session.scalar(
        select(func.coalesce(func.sum(SignIn.failed_attempts), 0)).where(
            SignIn.user_id == user_id, SignIn.created_at > since,
        )
    ) or 0
    return int(wrong_passwords) + int(wrong_codes)


def failures_counted(user: User) -> int:
    """The failures that count towards the account's next lock right now."""
    at = clock.now()
    since = max(
        filter(None, (at - FAILURE_WINDOW, latest_event_at(
            user.id, ("signed_in", "account_unlocked", "account_locked")))),
    )
    return _failures_since(user.id, since)


def lock_refusal(user: User) -> Optional[Refusal]:
    """A refusal saying until when the account is locked, or None when it is not."""
    at = clock.now()
    if not user.is_locked(at):
        return None
    from services.accounts import lifecycle  # it imports this module

    until = user.locked_until
    if lifecycle.reset_ends_a_lock(user):
        sooner = ("To sign in sooner, set a new password with “Forgotten your password?”: the "
                  f"link we email you ends the pause. If you need help, please "
                  f"{contact.contact_us()}.")
    else:
        sooner = f"If you need to sign in sooner, please {contact.contact_us()}."
    return Refusal(
        "locked", until,
        f"For your safety, signing in to this account is paused until {clock.hhmm(until)} "
        f"(in {wait_in_words((until - at).total_seconds())}), because of too many wrong "
        f"passwords or codes. We have emailed you about it. {sooner}",
    )


def _hold_afresh(user: User) -> None:
    """Hold the account's row until commit (codes.hold_account) and read its lock afresh:
    failures posted at once are counted one after another, so the tenth locks the account
    once, and a request that waited sees the lock the other made (one email, not two)."""
    codes.hold_account(user)
    db.session.refresh(user, ["locked_until", "lockout_count"])


def note_failure(user: User) -> Optional[Refusal]:
    """After a wrong password or code: lock the account if its failures reached the limit."""
    _hold_afresh(user)
    if failures_counted(user) < FAILURES_BEFORE_LOCK:
        return None
    return lock_account(user)


def lock_account(user: User) -> Refusal:
    """Lock the account for the next delay, end its pending sign-ins, and email the client."""
    at = clock.now()
    last_reset = latest_event_at(user.id, ("signed_in", "account_unlocked"))
    earlier_locks = db.session.scalar(
        select(func.count(Event.id)).where(
            Event.user_id == user.id, Event.type == "account_locked",
            Event.created_at > max(filter(None, (at - LOCK_MEMORY, last_reset))),
        )
    ) or 0
    delay = LOCK_DELAYS[min(earlier_locks, len(LOCK_DELAYS) - 1)]
    already_locked = user.is_locked(at)
    until = max(filter(None, (user.locked_until, at + delay)))
    user.locked_until = until
    user.lockout_count = earlier_locks + 1
    for pending in db.session.scalars(
        select(SignIn).where(SignIn.user_id == user.id, SignIn.status == "pending")
    ):
        if codes.end_sign_in(pending, "locked", at=at):
            audit.record("signin_locked", user_id=user.id, sign_in_id=pending.id,
                         detail={"by": "account lock"})
    audit.record(
        "account_locked", user_id=user.id, outcome="locked",
        detail={"until": until.isoformat(), "lock_number": earlier_locks + 1,
                "minutes": int(delay.total_seconds() // 60), "extended": already_locked},
    )
    if not already_locked:
        # Imported here: lifecycle imports this module (a new password lifts the lock).
        from services.accounts import lifecycle

        # One email per lock; a lock made longer while it lasts does not mail the client again.
        # Where a reset ends the lock, it says so: sooner than waiting, and no one to call.
        delivery.queue_message(
            user_id=user.id, channel="email", destination=user.email, kind="notice",
            template="lockout",
            values={
                "until": clock.local(until).strftime("%H:%M on %-d %B %Y"),
                "wait": wait_in_words(delay.total_seconds()),
                "failures": FAILURES_BEFORE_LOCK,
                "reset_ends_pause": lifecycle.reset_ends_a_lock(user),
                "forgot_url": urls.absolute_url("passwords.forgot"),
            },
        )
    return lock_refusal(user)


def unlock_account(user: User, actor: Optional[User] = None, *,
                   by: Optional[str] = None) -> bool:
    """Lift a lockout (support console, `flask users unlock`, or `by` a new password set with
    a link from the client's mailbox); the caller commits. Its event starts the count of
    failures, and of locks, afresh."""
    was_locked = user.is_locked(clock.now())
    user.locked_until = None
    user.lockout_count = 0
    audit.record(
        "account_unlocked", user_id=user.id, actor_id=actor.id if actor else None,
        detail={"by": by or ("support" if actor else "cli"), "was_locked": was_locked},
    )
    return was_locked


# --- cost caps ------------------------------------------------------------------------

def _cap_until(sent_times: list[datetime], cap: int) -> Optional[datetime]:
    """When enough of these sends have left the window for one more to be allowed."""
    if len(sent_times) < cap:
        return None
    sent_times = sorted(sent_times)
    return sent_times[len(sent_times) - cap] + CAP_WINDOW


def _cap_reached(sent_at: Optional[datetime]) -> Optional[datetime]:
    """When one more send is allowed, given the cap-th newest send in the window (None: under
    the cap)."""
    return sent_at + CAP_WINDOW if sent_at is not None else None


# The caps' questions, built once with bound parameters: every password post that sends a
# code asks them. `since` is the start of the window.
_messages, _events = Delivery.__table__, Event.__table__
_ACCOUNT_SENDS = select(_messages.c.created_at).where(
    _messages.c.user_id == bindparam("user"), _messages.c.kind.in_(CODE_KINDS),
    _messages.c.created_at > bindparam("since"),
)
# Codes asked for from an address, whoever's account: the outbox rows whose "queued" audit
# event came from it. The event is written with its message, so the second bound on time
# keeps the same rows; it lets the (type, created_at) index read the last hour, not every
# code ever queued.
_ADDRESS_SENDS = (
    select(_messages.c.created_at)
    .join(_events, _events.c.delivery_id == _messages.c.id)
    .where(_events.c.type == "delivery_queued", _messages.c.kind.in_(CODE_KINDS),
           _messages.c.created_at > bindparam("since"), _events.c.created_at > bindparam("since"))
)
# The cap-th newest send (`_cap_until` asked of the database): one row comes back however many
# codes were sent, so an office of clients behind one address (or the bench's 127.0.0.1) does
# not make each password post read and sort an hour of sends.
_NTH_FOR_ACCOUNT = (_ACCOUNT_SENDS.order_by(_messages.c.created_at.desc())
                    .offset(bindparam("account_skip")).limit(1))
_NTH_FROM_ADDRESS = (_ADDRESS_SENDS.where(_events.c.ip == bindparam("ip"))
                     .order_by(_messages.c.created_at.desc())
                     .offset(bindparam("address_skip")).limit(1))
# Both asked in one statement, one round trip to a database server instead of two.
_NTH_FOR_BOTH = select(_NTH_FOR_ACCOUNT.scalar_subquery(), _NTH_FROM_ADDRESS.scalar_subquery())
# An IPv6 client counts by its /64 (services/addresses.py): the last hour's codes asked for
# from any IPv6 address are read, and those in this /64 kept.
_FROM_IPV6 = _ADDRESS_SENDS.add_columns(_events.c.ip).where(_events.c.ip.contains(":"))
_COUNT_FOR_ACCOUNT = select(func.count()).select_from(_ACCOUNT_SENDS.subquery())


def _cap(name: str, default: int) -> int:
    return int(current_app.config.get(name, default))


def _hold_caps(user: User, ip: Optional[str]) -> None:
    """Lock the account's row (and on PostgreSQL this address's advisory lock) until commit,
    so requests sending codes at once count one after another and no cap is overshot.
    On SQLite the row lock is the database's write lock, which covers the address too.
    codes.start_sign_in relies on this lock to leave exactly one sign-in pending."""
    if ip and db.session.get_bind().dialect.name == "postgresql":
        where = addresses.limit_key(ip)
        key = int.from_bytes(hashlib.sha256(f"code-cap:{where}".encode()).digest()[:8], "big",
                             signed=True)
        db.session.connection().execute(_HOLD_ACCOUNT_THEN_ADDRESS, {"user": user.id, "key": key})
    else:
        codes.hold_account(user)


# codes.hold_account's row lock, then the address's advisory lock, in one round trip: the
# subquery locks the row before the outer query takes the advisory lock for it, the order of
# the two statements this replaces (a request that holds the account, answering "keep or
# new", may then wait for the address; one waiting for the account holds no address).
_HOLD_ACCOUNT_THEN_ADDRESS = text(
    "SELECT pg_advisory_xact_lock(:key) FROM "
    "(SELECT id FROM users WHERE id = :user FOR NO KEY UPDATE) AS held")


def code_send_refusal(user: User, ip: Optional[str]) -> Optional[Refusal]:
    """Refuse one more code to this account or from this IP when its hourly cap is used up.

    The caller sends the code (or not) in the same transaction: the locks taken here hold
    until it commits."""
    _hold_caps(user, ip)
    at = clock.now()
    window = {"since": at - CAP_WINDOW}
    account = {**window, "user": user.id,
               "account_skip": max(0, _cap("CODES_PER_ACCOUNT_PER_HOUR",
                                          CODES_PER_ACCOUNT_PER_HOUR) - 1)}
    ip_cap = _cap("CODES_PER_IP_PER_HOUR", CODES_PER_IP_PER_HOUR)
    network = addresses.network_of(ip) if ip else None
    by_network = network is not None and network.version == 6
    connection = db.session.connection()
    if ip and not by_network:
        account_nth, address_nth = connection.execute(_NTH_FOR_BOTH, {
            **account, "ip": ip, "address_skip": max(0, ip_cap - 1)}).one()
    else:
        account_nth, address_nth = connection.execute(_NTH_FOR_ACCOUNT, account).scalar(), None
    until = _cap_reached(account_nth)
    if until is not None:
        sent = connection.execute(_COUNT_FOR_ACCOUNT, account).scalar()
        return Refusal(
            "account_cap", until,
            f"We have sent this account {sent} codes in the last hour, which is "
            f"the most we send. Please wait {wait_in_words((until - at).total_seconds())} "
            f"(until {clock.hhmm(until)}), then try again. Your latest code may still arrive.",
        )
    if ip:
        if by_network:
            rows = connection.execute(_FROM_IPV6, window).all()
            until = _cap_until([sent_at for sent_at, event_ip in rows
                                if event_ip == ip or addresses.same_client(event_ip, ip)], ip_cap)
        else:
            until = _cap_reached(address_nth)
        if until is not None:
            return Refusal(
                "ip_cap", until,
                "A lot of codes have been sent from your network in the last hour. Please "
                f"wait {wait_in_words((until - at).total_seconds())} (until {clock.hhmm(until)}), "
                "then try again.",
            )
    return None


def refuse_new_code(user: User, ip: Optional[str]) -> Optional[Refusal]:
    """Before a new sign-in sends a code: refuse while locked or over a cap (and record why)."""
    refusal = lock_refusal(user) or code_send_refusal(user, ip)
    if refusal is not None:
        audit.record("code_refused", user_id=user.id, outcome=refusal.reason,
                     detail={"until": refusal.until.isoformat()})
    return refusal


# --- request limits (Flask-Limiter) ---------------------------------------------------
#
# Key functions read the request, so this part is request-facing glue for the blueprints.

def _keyed(kind: str, value: str) -> str:
    """A limiter key that puts no email address, client address or account id in the
    limiter's storage (Redis), keyed with SECRET_KEY: two installs sharing one Redis (a host
    serving several firms, a staging copy beside production) count apart, where an address
    or a row id (`user:1` is someone else in each database) would be counted for both."""
    digest = hmac.new(current_app.config["SECRET_KEY"].encode(), f"{kind}:{value}".encode(),
                      hashlib.sha256).hexdigest()[:32]
    return f"{kind}:{digest}"


def _ip_key() -> str:
    return _keyed("ip", addresses.limit_key(request.remote_addr))


def account_key_from_email() -> str:
    """The account a password check is for: the email typed, known to us or not."""
    email = request.form.get("email", "")
    if not isinstance(email, str) or not email.strip():
        return _ip_key()
    return f"email:{email_key(email)}"  # the address's own count (below), in its one spelling


def account_key_from_sign_in() -> str:
    """The account whose code this browser is entering: the session keeps it beside the
    sign-in (blueprints/auth.py, _remember_sign_in). A session made before it kept the account
    there asks the database."""
    sign_in_id = session.get("signin_id")
    if not isinstance(sign_in_id, int):
        return _ip_key()
    user_id = session.get("signin_user")
    if not isinstance(user_id, int):
        user_id = db.session.scalar(select(SignIn.user_id).where(SignIn.id == sign_in_id))
    return _keyed("user", str(user_id)) if user_id is not None else _ip_key()


def account_key_from_current_user() -> str:
    """The signed-in account changing its preferences."""
    if has_request_context() and current_user.is_authenticated:
        return _keyed("user", str(current_user.id))
    return _ip_key()


def _configured(name: str) -> Callable[[], str]:
    return lambda: current_app.config.get("RATE_LIMITS", {}).get(name, DEFAULT_RATE_LIMITS[name])


def _counting(methods: Optional[tuple[str, ...]], limit: Callable):
    """`limit` (a Flask-Limiter decorator), with the methods it counts written on the view it
    returns (None: every method), where _nothing_to_count reads them."""

    def decorate(view):
        limited = limit(view)
        limited.counted_methods = methods
        return limited

    return decorate


POSTS = ("POST",)


def _limit(name: str, key_func: Callable[[], str]):
    return _counting(POSTS, limiter.limit(_configured(name), key_func=key_func,
                                          methods=list(POSTS), scope=name))


def _both(per_ip: str, per_account: str, account_key: Callable[[], str]):
    """A decorator applying a per-IP and a per-account limit to a view's POSTs."""
    ip_limit = _limit(per_ip, _ip_key)
    account_limit = _limit(per_account, account_key)

    def decorate(view):
        return ip_limit(account_limit(view))

    return decorate


# Decorators for the routes (under @bp.route): they limit POSTs only.
password_checks = _both("login_per_ip", "login_per_account", account_key_from_email)
code_entries = _both("code_per_ip", "code_per_account", account_key_from_sign_in)
resends = _both("resend_per_ip", "resend_per_account", account_key_from_sign_in)
preference_changes = _both("preferences_per_ip", "preferences_per_account",
                           account_key_from_current_user)
passkey_sign_ins = _limit("passkey_per_ip", _ip_key)


def limit_wait_seconds() -> int:
    """Seconds until the request limit this request broke lets it through again."""
    current = limiter.current_limit
    if current is None:
        return 60
    return max(1, math.ceil(current.reset_at - time.time()))


def limited_message(seconds: int) -> str:
    """The words on the 429 page of a request limit."""
    return ("You have tried that too many times in a short while, so we have paused it to "
            f"keep accounts safe. Please wait {wait_in_words(seconds)} and try again.")



# --- accounts without a shell (services.accounts) ----------------------------------------
#
# Forms reached without signing in (forgotten password, reset and invitation links) are
# limited per IP and per address typed or link used; forms of a signed-in client per account.

DEFAULT_RATE_LIMITS.update({
    "forgot_per_ip": "5 per minute;30 per hour",
    "forgot_per_account": "3 per minute;10 per hour",
    "link_per_ip": "10 per minute;60 per hour",
    "link_per_token": "5 per minute;20 per hour",
    "account_change_per_ip": "10 per minute;60 per hour",
    "account_change_per_account": "5 per minute;20 per hour",
    "staff_per_ip": "30 per minute;300 per hour",
    "staff_per_account": "30 per minute;300 per hour",
})


def token_key_from_url() -> str:
    """The link being used (hashed): many tries at one reset or invitation link."""
    token = (request.view_args or {}).get("token", "")
    return _keyed("token", str(token)[:200]) if token else _ip_key()


forgotten_passwords = _both("forgot_per_ip", "forgot_per_account", account_key_from_email)
link_uses = _both("link_per_ip", "link_per_token", token_key_from_url)
account_changes = _both("account_change_per_ip", "account_change_per_account",
                        account_key_from_current_user)
staff_changes = _both("staff_per_ip", "staff_per_account", account_key_from_current_user)


# --- the OpenID Connect endpoints an app's server calls -------------------------------------
#
# A portal app's server asks for tokens on every sign-in, often from one address, so only
# refused requests count: a wrong client secret, code, PKCE verifier or access token. Each of
# those is a guess at a long random value, and the limit keeps the guessing (and its rows and
# log lines) small without ever slowing an app that gets it right.

DEFAULT_RATE_LIMITS["oauth_failures_per_ip"] = "30 per minute;300 per hour"


def _refused(response) -> bool:
    return response.status_code in (400, 401, 403)


def _oauth_error(_limit):
    """The 429 an app's server reads: JSON in OAuth's words (RFC 6749 5.2), not our page.
    The 429 handler (app.py) adds Retry-After."""
    response = jsonify(error="invalid_request", error_description=(
        f"Too many refused requests from this address; try again in {limit_wait_seconds()} s."))
    response.status_code = 429
    return response


# One count for both endpoints: a shared limit. Unlike the others it counts every method
# (userinfo is asked by GET as well).
oauth_failures = _counting(None, limiter.shared_limit(
    _configured("oauth_failures_per_ip"), key_func=_ip_key, scope="oauth_failures_per_ip",
    deduct_when=_refused, on_breach=_oauth_error))


# The authorization endpoint, which browsers ask: each sign-in through an app passes it twice
# (on the way to the sign-in and back), a single-page app's silent renewal (prompt=none) once
# an hour or so, and an office's clients share one address. Generous for that; it keeps a
# script from asking it (and its database work) without end. Every method counts (GET or POST).
DEFAULT_RATE_LIMITS["oauth_authorize_per_ip"] = "60 per minute;600 per hour"

oauth_authorizations = _counting(None, limiter.limit(
    _configured("oauth_authorize_per_ip"), key_func=_ip_key, scope="oauth_authorize_per_ip"))


@limiter.request_filter
def _nothing_to_count() -> bool:
    """Exempt a request that no limit counts before Flask-Limiter works any limit out: each
    limit's view says which methods it counts (_counting). Without this, each page shown (the
    login page, the code page, the portal) paid for the limiter finding nothing to count,
    about as much as rendering a small page (bench/instructions.py)."""
    view = current_app.view_functions.get(request.endpoint)
    counted = getattr(view, "counted_methods", ())
    return counted is not None and request.method not in counted


# --- what a wrong password says, without telling who has an account (issue 11) ----------
#
# The moment an address is paused, the page must say so, yet an attacker must not learn from
# it whether the email address has an account. So what a wrong password is told depends on
# the address typed alone, by one rule for every address: its wrong passwords are counted
# (under a keyed hash of the address, never the address, in `address_failures`) and after
# FAILURES_BEFORE_LOCK it is paused for the same growing delays. Nothing only the owner can
# do (a successful sign-in, wrong codes, which need the password) changes that count, so it
# is the same for an account and for no account. The account's real lock (note_failure)
# follows its own rules beside it, and shows itself only to the right password.
#
# Both are read through the (email_key, created_at) index, and before this request writes:
# the same few rows for a known or an unknown address however many others are being tried,
# and on SQLite not under the database's write lock.

def email_key(email: str) -> str:
    """The keyed hash an address is counted under (SECRET_KEY; never the address), in its
    one spelling (services.emails.canonical) however it was typed."""
    return _keyed("email", emails.canonical(email)[:254]).split(":", 1)[1]


def _hold_address(key: str) -> None:
    """On PostgreSQL, take this address's advisory lock until commit, so wrong passwords
    posted at once are counted one after another and the pause falls on the tenth, for every
    address alike. (On SQLite the count is read before the write lock, so two posted at the
    very same moment may both read nine and the pause come one later: alike for any address.)"""
    if db.session.get_bind().dialect.name == "postgresql":
        hold_named_lock(db.session, f"address:{key}")


def _address_rows(key: str, kind: str, since: datetime):
    """This address's rows of one kind since `since`: a range of the (key, created_at) index."""
    return select(AddressFailure).where(
        AddressFailure.email_key == key, AddressFailure.created_at > since,
        AddressFailure.kind == kind)


def _latest_pause(key: str, at: datetime) -> tuple[Optional[datetime], Optional[datetime]]:
    """When this address was last paused within LOCK_MEMORY, and until when (None, None)."""
    row = db.session.execute(
        _address_rows(key, "paused", at - LOCK_MEMORY)
        .with_only_columns(AddressFailure.created_at, AddressFailure.paused_until)
        .order_by(AddressFailure.created_at.desc()).limit(1)
    ).first()
    return (row[0], row[1]) if row is not None else (None, None)


def _count(rows) -> int:
    return db.session.scalar(select(func.count()).select_from(rows.subquery())) or 0


# Old rows each wrong password deletes at most: more than the one row it adds, so the table
# stays as small as a week of wrong passwords without any other process to prune it.
FORGET_AT_ONCE = 20


def _forget_old_failures(at: datetime) -> None:
    """Delete a few rows no rule reads any more (older than LOCK_MEMORY), through the
    created_at index. SKIP LOCKED (PostgreSQL): rows another request is deleting are left to
    it, so requests for different addresses never wait on each other here."""
    old = (select(AddressFailure.id).where(AddressFailure.created_at <= at - LOCK_MEMORY)
           .limit(FORGET_AT_ONCE).with_for_update(skip_locked=True))
    db.session.execute(
        delete(AddressFailure).where(AddressFailure.id.in_(old.scalar_subquery()))
        .execution_options(synchronize_session=False))


def _address_failure(key: str) -> Optional[datetime]:
    """Count a wrong password for the address of this `email_key`, account or not, and pause
    the address at FAILURES_BEFORE_LOCK. Returns until when it is paused, if this attempt
    paused it (or made the pause longer); else None. Reads first, then writes (see above)."""
    at = clock.now()
    _hold_address(key)
    last_pause, until = _latest_pause(key, at)
    since = max(filter(None, (at - FAILURE_WINDOW, last_pause)))
    failures = _count(_address_rows(key, "wrong", since)) + 1  # this one is written below
    earlier = _count(_address_rows(key, "paused", at - LOCK_MEMORY)) \
        if failures >= FAILURES_BEFORE_LOCK else 0
    _forget_old_failures(at)
    db.session.add(AddressFailure(email_key=key, kind="wrong", created_at=at))
    if failures < FAILURES_BEFORE_LOCK:
        db.session.flush()
        return None
    delay = LOCK_DELAYS[min(earlier, len(LOCK_DELAYS) - 1)]
    until = max(filter(None, (until, at + delay)))
    # A microsecond later, so that this pause counts only the wrong passwords after it.
    db.session.add(AddressFailure(email_key=key, kind="paused", paused_until=until,
                                  created_at=at + timedelta(microseconds=1)))
    db.session.flush()
    return until


def wrong_password(user: Optional[User], email: str) -> Optional[datetime]:
    """After a wrong password for `email`: count it, and when this one pauses the address
    (or makes its pause longer), until when; else None. The caller commits.

    What the page is told comes from the address alone (_address_failure), by the same rule
    for an account and for none. For an account, the failure also counts towards its real
    lock (note_failure), which emails the client and shows only to the right password.
    Only the pausing attempt is told: a later wrong password gets the usual answer, as it
    would for an address nobody ever tried."""
    key = email_key(email)
    paused = _address_failure(key)
    if user is None:
        audit.record("password_failed", outcome="wrong",
                     detail={"unknown_email": True, "email_key": key})
        if paused is not None:
            audit.record("unknown_email_locked", outcome="locked",
                         detail={"email_key": key, "until": paused.isoformat()})
        return paused
    audit.record("password_failed", user_id=user.id, outcome="wrong")
    note_failure(user)
    return paused


def paused_until(email: str) -> Optional[datetime]:
    """Until when this address is paused as an outsider sees it (the address rule above,
    account or not), or None. Never the account's own lock: that needs the password."""
    email = email or ""
    if not email.strip() or "\x00" in email:
        return None
    at = clock.now()
    _, until = _latest_pause(email_key(email), at)
    return until if until is not None and until > at else None
