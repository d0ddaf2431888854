"""The support console's questions and actions: find a client, their sign-ins, what went wrong.

Built to stay fast with millions of rows: a client's timeline is one page of sign-ins (by the
`ix_sign_ins_user_created` index), and the messages and events of that page come in one
query each, never one per sign-in. Code columns are never loaded here (`raiseload`), so no
page can show them even by mistake.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Iterable, Iterator, Optional

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import aliased, defer

from extensions import db
from models import AccountToken, Delivery, Event, SignIn, User
from services import audit, clock, emails
from services.signin import codes, limits, phone_proofs
from services.support import diagnosis, timeline
from services.support.diagnosis import Finding, SignInFacts
from services.federation.apps import apps_named_in
from services.masking import mask_destination
from services.phones import uk_mobile

PAGE_SIZE = 20
EXPORT_BATCH = 200
PROBLEM_DAYS = 7
PROBLEM_LIMIT = 30
SEARCH_LIMIT = 50
MAX_QUERY_LENGTH = 254
ACTIVITY_LIMIT = 20
ACTIVITY_SCAN = 2000
# Larger than any id a database will hand out; anything bigger is not an id at all.
MAX_ID = 2 ** 63 - 1

# Events of a sign-in that mean it went wrong (with the outcomes that do), for the list
# across all clients; failed messages are found on the deliveries themselves.
PROBLEM_EVENTS = (
    ("code_entry", ("superseded", "expired", "locked")),
    ("signin_expired", None),
    ("signin_locked", None),
    ("oidc_denied", None),
    ("oidc_bad_request", None),
)
# Account events too common or too obvious to list under "other activity".
QUIET_ACTIVITY = ("password_ok",)

# The support view never needs a code's hash or its encrypted copy: refuse to load them.
_NO_CODES_SIGN_IN = (defer(SignIn.code_hash, raiseload=True),
                     defer(SignIn.code_encrypted, raiseload=True))
_NO_CODES_DELIVERY = (defer(Delivery.code_encrypted, raiseload=True),)


@dataclass
class SignInView:
    """One sign-in as the console shows it: facts, diagnosis and steps."""

    facts: SignInFacts
    findings: list[Finding]
    steps: list[timeline.Step]
    device: str
    ending: str
    destination: str

    @property
    def sign_in(self) -> SignIn:
        return self.facts.sign_in

    @property
    def went_wrong(self) -> bool:
        return diagnosis.went_wrong(self.findings)


@dataclass
class ClientPage:
    """Everything /support/clients/<id> shows."""

    user: User
    views: list[SignInView]
    older: Optional[int]  # the `before` value for the next page, if there is one
    newest: bool  # whether this is the first page
    pending: int
    activity: list[timeline.Step]
    locked: bool
    phone: str
    phone_is_uk_mobile: bool
    # How the next sign-in's code comes (codes.channel_for), which is not always the channel
    # the client chose, and why not, in words ("" when it is).
    codes_by: str = "email"
    codes_by_note: str = ""


@dataclass
class ProblemRow:
    """A sign-in that went wrong, for the list across all clients."""

    view: SignInView
    user: User
    # The sign-in to begin the client's page at, when it is not on their newest page.
    start: Optional[int] = None


@dataclass
class SearchResult:
    users: list[User] = field(default_factory=list)
    more: bool = False
    message: str = ""


def valid_id(value) -> Optional[int]:
    """An id from a URL or form, or None when it cannot be one."""
    if isinstance(value, int) and 0 < value <= MAX_ID:
        return value
    return None


def get_user(user_id: int) -> Optional[User]:
    """The user with this id, or None (also for ids no database could hold)."""
    return db.session.get(User, user_id) if valid_id(user_id) else None


# --- finding clients ------------------------------------------------------------------

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def hidden_roles(staff: User) -> tuple[str, ...]:
    """Roles whose accounts do not exist for this staff member: admins, to support staff."""
    return () if staff.role == "admin" else ("admin",)


# Staff see a client's number only as "•••• ••• 456". So a number is found by the whole of it
# (as the client says it on the phone) or by the three digits shown: a search by any other part
# would show whether a digit is there, and a hundred searches would rebuild the number.
SHOWN_DIGITS = 3
PHONE_SEARCH_WORDS = ("To find someone by phone number, type the whole number, like 07400 "
                      "123456, or its last three digits.")


def _phone_condition(text: str):
    """The condition finding a number typed whole or by its last three digits, or None, and
    whether what was typed is only some other part of a number (said on the page)."""
    digits = re.sub(r"\D", "", text)
    if not digits or len(digits) < len(re.sub(r"[\s+()\-.]", "", text)):
        return None, False  # letters as well: an email address, or part of one
    if len(digits) == SHOWN_DIGITS:
        return User.phone.like(f"%{digits}"), False
    mobile = uk_mobile(text)
    international = text.startswith(("+", "00"))
    whole = mobile or ("+" + digits.removeprefix("00") if international else None)
    if whole is None:
        return None, len(digits) > SHOWN_DIGITS
    # A number that is no UK mobile may be part of one: if nothing is found, say how to search.
    return User.phone == whole, mobile is None


def find_clients(query: Optional[str], hidden: tuple[str, ...] = ()) -> SearchResult:
    """Users whose email address contains what support typed, or whose phone number is it
    (whole, or its last three digits).

    Accounts of `hidden` roles are left out in the query itself, so that what the page says
    ("No one's email ..." or "Showing the first 50") cannot tell that one matched."""
    text = _CONTROL.sub("", query or "").strip()
    if not text:
        return SearchResult()
    if len(text) > MAX_QUERY_LENGTH:
        return SearchResult(message="That is longer than any email address. Type part of the "
                                    "client's email address or phone number.")
    # Addresses are stored in one spelling (services.emails.canonical): a whole address pasted
    # as the client wrote it (full-width letters, an xn-- domain) finds theirs, and part of
    # one is matched in the same letters.
    needle = emails.canonical(text)
    conditions = [User.email.ilike(f"%{_like_escape(needle)}%", escape="\\")]
    phone, part_of_a_number = _phone_condition(text)
    if phone is not None:
        conditions.append(phone)
    users = db.session.scalars(
        select(User).where(or_(*conditions), User.role.not_in(hidden))
        .order_by(User.email).limit(SEARCH_LIMIT + 1)
    ).all()
    result = SearchResult(users=list(users[:SEARCH_LIMIT]), more=len(users) > SEARCH_LIMIT)
    if not users:
        result.message = f"No one’s email address or phone number contains “{text}”."
        if part_of_a_number:
            result.message += " " + PHONE_SEARCH_WORDS
        name, at, domain = needle.rpartition("@")
        if name and at and "." in domain:
            # A whole address with no account: the client may have typed another spelling
            # (a mistyped domain), so no code was ever sent. Say so, and how to find theirs.
            result.message += (
                f" No account uses that address, so signing in with it sends no code. Search "
                f"for “{name}” (the part before the @) to see accounts with that name, or "
                "search their phone number, and ask the client which address they use.")
    return result


# --- loading sign-ins with what happened to them --------------------------------------

def _sign_ins(*conditions, order=None, limit: Optional[int] = None) -> list[SignIn]:
    query = select(SignIn).options(*_NO_CODES_SIGN_IN).where(*conditions)
    if order is not None:
        query = query.order_by(*order)
    if limit is not None:
        query = query.limit(limit)
    return list(db.session.scalars(query).all())


def _int_ids(values: Iterable) -> set[int]:
    return {v for v in values if isinstance(v, int) and not isinstance(v, bool) and valid_id(v)}


def _bursts(known: dict[int, SignIn]) -> dict[int, list[SignIn]]:
    """Sign-ins that replaced each other within a short time, oldest first, by member id."""
    replaced = {s.superseded_by_id: s for s in known.values() if s.superseded_by_id in known}
    bursts: dict[int, list[SignIn]] = {}
    for sign_in in known.values():
        if sign_in.id in bursts:
            continue
        chain = [sign_in]
        # Replacements point only forward in time; the length cap guards against bad data.
        while chain[0].id in replaced and len(chain) <= len(known) and (
                chain[0].created_at - replaced[chain[0].id].created_at <= diagnosis.SHORT_TIME):
            chain.insert(0, replaced[chain[0].id])
        while chain[-1].superseded_by_id in known and len(chain) <= len(known) and (
                known[chain[-1].superseded_by_id].created_at - chain[-1].created_at
                <= diagnosis.SHORT_TIME):
            chain.append(known[chain[-1].superseded_by_id])
        for member in chain:
            bursts[member.id] = chain
    return bursts


def load_views(sign_ins: list[SignIn], context: Iterable[SignIn] = (),
               tz: str = "Europe/London") -> list[SignInView]:
    """Diagnose these sign-ins, loading their messages and events in a few queries in all."""
    if not sign_ins:
        return []
    ids = [s.id for s in sign_ins]
    deliveries = db.session.scalars(
        select(Delivery).options(*_NO_CODES_DELIVERY).where(Delivery.sign_in_id.in_(ids))
        .order_by(Delivery.created_at, Delivery.id)
    ).all()
    events = db.session.scalars(
        select(Event).where(Event.sign_in_id.in_(ids)).order_by(Event.created_at, Event.id)
    ).all()
    known = {s.id: s for s in list(context) + sign_ins}
    wanted = _int_ids(
        [s.superseded_by_id for s in sign_ins]
        + [(e.detail or {}).get("earlier_sign_in") for e in events if isinstance(e.detail, dict)]
    ) - set(known)
    if wanted:
        known.update({s.id: s for s in _sign_ins(SignIn.id.in_(wanted))})
    actor_ids = _int_ids(e.actor_id for e in events)
    actors = dict(db.session.execute(
        select(User.id, User.email).where(User.id.in_(actor_ids))).all()) if actor_ids else {}

    apps = apps_named_in(s.next_url for s in sign_ins)

    by_sign_in: dict[int, tuple[list, list]] = {i: ([], []) for i in ids}
    for item in deliveries:
        by_sign_in[item.sign_in_id][0].append(item)
    for event in events:
        by_sign_in[event.sign_in_id][1].append(event)
    bursts = _bursts(known)
    now = clock.now()
    views = []
    for sign_in in sign_ins:
        items, happened = by_sign_in[sign_in.id]
        facts = SignInFacts(
            sign_in=sign_in, deliveries=items, events=happened,
            successor=known.get(sign_in.superseded_by_id),
            burst=bursts.get(sign_in.id, [sign_in]),
            earlier={i: known[i] for i in _int_ids(
                (e.detail or {}).get("earlier_sign_in") for e in happened
                if isinstance(e.detail, dict)) if i in known},
            actors=actors, app=apps.get(sign_in.next_url),
        )
        views.append(SignInView(
            facts=facts, findings=diagnosis.diagnose(facts, tz, now),
            steps=timeline.steps(facts, tz), device=timeline.device_words(sign_in.user_agent),
            ending=timeline.ending(facts, tz),
            destination=mask_destination(sign_in.channel, sign_in.destination),
        ))
    return views


def _anchor(user_id: int, sign_in_id: Optional[int]):
    if not valid_id(sign_in_id):
        return None
    return db.session.execute(
        select(SignIn.created_at, SignIn.id)
        .where(SignIn.id == sign_in_id, SignIn.user_id == user_id)
    ).first()


def _page_of_sign_ins(user_id: int, before: Optional[int], size: int,
                      start: Optional[int] = None):
    """A page of a user's sign-ins, newest first, plus one older row for context: those older
    than the sign-in `before`, or else from the sign-in `start` on (a link to one sign-in)."""
    conditions = [SignIn.user_id == user_id]
    anchor = _anchor(user_id, before)
    if anchor is not None:
        # `created_at <=` keeps this an index range scan; the rest breaks ties by id.
        conditions += [SignIn.created_at <= anchor.created_at,
                       or_(SignIn.created_at < anchor.created_at, SignIn.id < anchor.id)]
    elif (anchor := _anchor(user_id, start)) is not None:
        conditions += [SignIn.created_at <= anchor.created_at,
                       or_(SignIn.created_at < anchor.created_at, SignIn.id <= anchor.id)]
    rows = _sign_ins(*conditions, order=(SignIn.created_at.desc(), SignIn.id.desc()),
                     limit=size + 1)
    return rows[:size], rows[size:], anchor is not None


def client_page(user: User, before: Optional[int], tz: str,
                start: Optional[int] = None) -> ClientPage:
    """A client's settings, a page of their sign-ins with diagnoses, and other activity; the
    page older than the sign-in `before`, or beginning at the sign-in `start`."""
    shown, extra, paged = _page_of_sign_ins(user.id, before, PAGE_SIZE, start)
    views = load_views(shown, context=extra, tz=tz)
    channel = codes.channel_for(user)  # how the next code comes
    pending = db.session.scalar(
        select(func.count()).select_from(SignIn)
        .where(SignIn.user_id == user.id, SignIn.status == "pending")
    ) or 0
    return ClientPage(
        user=user, views=views, older=shown[-1].id if extra else None, newest=not paged,
        pending=pending, activity=account_activity(user, tz), locked=user.is_locked(clock.now()),
        phone=mask_destination("sms", user.phone),
        phone_is_uk_mobile=bool(user.phone) and uk_mobile(user.phone) == user.phone,
        codes_by=channel, codes_by_note=_codes_by_note(user, channel),
    )


def _codes_by_note(user: User, channel: str) -> str:
    """Why the next code will not come the way the client chose (it comes by `channel`, from
    codes.channel_for), or "" when it will."""
    if channel == user.channel:
        return ""
    if user.channel == "sms":
        return ("they chose text messages, but no mobile number is set" if not user.phone
                else "they chose text messages, but this server has no text message service "
                     "set up")
    if user.channel == "totp":
        return "they chose an authenticator app, but its setup was not finished"
    return ""


def account_activity(user: User, tz: str, limit: int = ACTIVITY_LIMIT) -> list[timeline.Step]:
    """The newest account events that belong to no sign-in: wrong passwords, staff actions."""
    # Look only among the user's newest events, so a client with years of sign-ins (whose
    # events all belong to sign-ins) costs a bounded index range, not all their history.
    newest = (select(Event.id).where(Event.user_id == user.id)
              .order_by(Event.created_at.desc()).limit(ACTIVITY_SCAN))
    events = db.session.scalars(
        select(Event)
        .where(Event.id.in_(newest), Event.sign_in_id.is_(None),
               Event.type.not_in(QUIET_ACTIVITY))
        .order_by(Event.created_at.desc(), Event.id.desc()).limit(limit)
    ).all()
    actor_ids = _int_ids(e.actor_id for e in events)
    actors = dict(db.session.execute(
        select(User.id, User.email).where(User.id.in_(actor_ids))).all()) if actor_ids else {}
    return [timeline.activity_step(e, actors, tz) for e in events]


def _hidden_user_ids(hidden: tuple[str, ...]) -> list[int]:
    """The accounts of `hidden` roles (a firm's few admins)."""
    return list(db.session.scalars(select(User.id).where(User.role.in_(hidden)))) \
        if hidden else []


def recent_problems(tz: str, hidden: tuple[str, ...] = (), *, days: int = PROBLEM_DAYS,
                    limit: int = PROBLEM_LIMIT) -> list[ProblemRow]:
    """Sign-ins across all clients that went wrong lately, newest first.

    Sign-ins of `hidden` roles are left out in the queries, before the limit, so that they
    neither show nor make the list shorter."""
    since = clock.now() - timedelta(days=days)
    hidden_ids = _hidden_user_ids(hidden)

    def shown(query, sign_in_id):
        if not hidden_ids:
            return query
        return (query.join(SignIn, SignIn.id == sign_in_id)
                .where(SignIn.user_id.not_in(hidden_ids)))

    hits: list[tuple[datetime, int]] = []
    # One small query per kind of trouble, each an index range, rather than one big OR.
    for type_, outcomes in PROBLEM_EVENTS:
        query = (select(Event.created_at, Event.sign_in_id)
                 .where(Event.type == type_, Event.created_at >= since,
                        Event.sign_in_id.is_not(None)))
        if outcomes:
            query = query.where(Event.outcome.in_(outcomes))
        query = shown(query, Event.sign_in_id)
        hits += db.session.execute(query.order_by(Event.created_at.desc()).limit(limit)).all()
    failed = (select(Delivery.created_at, Delivery.sign_in_id)
              .where(Delivery.status == "failed", Delivery.created_at >= since,
                     Delivery.sign_in_id.is_not(None)))
    hits += db.session.execute(
        shown(failed, Delivery.sign_in_id).order_by(Delivery.created_at.desc()).limit(limit)
    ).all()
    # Still being retried after a failed try (the mail server down): not failed yet, but the
    # client is waiting now, and the page must not say "Nothing has gone wrong" meanwhile.
    retrying = (select(Delivery.created_at, Delivery.sign_in_id)
                .where(Delivery.status.in_(("queued", "sending")), Delivery.attempts > 0,
                       Delivery.last_error.is_not(None), Delivery.created_at >= since,
                       Delivery.sign_in_id.is_not(None)))
    hits += db.session.execute(
        shown(retrying, Delivery.sign_in_id).order_by(Delivery.created_at.desc()).limit(limit)
    ).all()
    newest: list[int] = []
    for _, sign_in_id in sorted(hits, key=lambda hit: hit[0], reverse=True):
        if sign_in_id not in newest:
            newest.append(sign_in_id)
    newest = newest[:limit]
    if not newest:
        return []
    sign_ins = {s.id: s for s in _sign_ins(SignIn.id.in_(newest))}
    ordered = [sign_ins[i] for i in newest if i in sign_ins]
    users = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_({s.user_id for s in ordered})))}
    deep = _off_the_newest_page([s.id for s in ordered])
    return [ProblemRow(view=view, user=users[view.sign_in.user_id],
                       start=view.sign_in.id if view.sign_in.id in deep else None)
            for view in load_views(ordered, tz=tz)]


def _off_the_newest_page(sign_in_ids: list[int]) -> set[int]:
    """Those of these sign-ins with a page's worth of their client's sign-ins since, so that
    a link to the client's newest page would not show them. One query; each counts only
    its client's sign-ins since (days, within the caps), by the user and time index."""
    newer = aliased(SignIn)
    counts = db.session.execute(
        select(SignIn.id, func.count(newer.id))
        .join(newer, and_(newer.user_id == SignIn.user_id,
                          or_(newer.created_at > SignIn.created_at,
                              and_(newer.created_at == SignIn.created_at,
                                   newer.id > SignIn.id))))
        .where(SignIn.id.in_(sign_in_ids)).group_by(SignIn.id)
    ).all()
    return {sign_in_id for sign_in_id, count in counts if count >= PAGE_SIZE}


@dataclass
class LockRow:
    """An account locked lately, for the console's "went wrong lately" list."""

    user: User
    at: datetime
    until: Optional[datetime]
    still_locked: bool


def recent_locks(hidden: tuple[str, ...] = (), *, days: int = PROBLEM_DAYS,
                 limit: int = PROBLEM_LIMIT) -> list[LockRow]:
    """Accounts locked in the last `days` (the newest lock of each), newest first, but those
    of `hidden` roles. A lock may end no sign-in (wrong passwords only), so the sign-in list
    alone would miss it."""
    query = (select(Event.user_id, Event.created_at, Event.detail)
             .where(Event.type == "account_locked", Event.user_id.is_not(None),
                    Event.created_at >= clock.now() - timedelta(days=days)))
    if hidden_ids := _hidden_user_ids(hidden):
        query = query.where(Event.user_id.not_in(hidden_ids))
    rows = db.session.execute(query.order_by(Event.created_at.desc()).limit(limit * 5)).all()
    newest: dict[int, tuple] = {}
    for user_id, at, detail in rows:
        newest.setdefault(user_id, (at, detail or {}))
    users = {u.id: u for u in db.session.scalars(
        select(User).where(User.id.in_(list(newest)[:limit])))} if newest else {}
    found = []
    for user_id, (at, detail) in list(newest.items())[:limit]:
        if user_id in users:
            user = users[user_id]
            found.append(LockRow(user, at, timeline._parse_time(detail.get("until")),
                                 user.is_locked(clock.now())))
    return found


# --- actions --------------------------------------------------------------------------

@dataclass(frozen=True)
class ActionResult:
    changed: bool
    message: str


def can_switch_to_email(user: User) -> bool:
    return user.channel != "email"


def is_locked(user: User) -> bool:
    return user.is_locked(clock.now())


def has_pending(user: User) -> bool:
    """Whether any sign-in of the user is still waiting for a code."""
    return db.session.scalar(
        select(SignIn.id).where(SignIn.user_id == user.id, SignIn.status == "pending").limit(1)
    ) is not None


def pending_sign_ins(user: User) -> list[SignIn]:
    """The user's sign-ins still waiting for a code."""
    return list(db.session.scalars(
        select(SignIn).where(SignIn.user_id == user.id, SignIn.status == "pending")
        .order_by(SignIn.created_at)
    ).all())


def last_address_change(user: User) -> Optional[Event]:
    """The latest change of the account's sign-in address, if the trail still has it: by the
    client's link (`email_changed`) or by giving the account back (`account_recovered` that
    moved it). Its `detail` holds the old and new addresses, masked."""
    for event in db.session.scalars(
            select(Event).where(Event.user_id == user.id,
                                Event.type.in_(("email_changed", "account_recovered")))
            .order_by(Event.created_at.desc(), Event.id.desc()).limit(ACTIVITY_LIMIT)):
        if event.type == "email_changed" or (event.detail or {}).get("email_changed"):
            return event
    return None


def switch_to_email(user: User, staff: User) -> ActionResult:
    """Send this client's codes by email from now on (the caller commits)."""
    if not can_switch_to_email(user):
        return ActionResult(False, f"{user.email} already gets codes by email.")
    old = user.channel
    user.channel = "email"
    audit.record("support_channel_switched", user_id=user.id, actor_id=staff.id,
                 detail={"from": old, "to": "email", "by": "support"})
    # Like a change the client makes, this one is announced to them too.
    phone_proofs.notify(user, "Our support team set your sign-in codes to come by email.")
    return ActionResult(True, f"{user.email} will get codes by email from their next sign-in.")


def unlock(user: User, staff: User) -> ActionResult:
    """Lift the account lockout and restart its count of failures (the caller commits)."""
    if limits.unlock_account(user, actor=staff):
        return ActionResult(True, f"{user.email} is unlocked and can sign in again.")
    return ActionResult(True, f"{user.email} was not locked; their count of wrong passwords "
                              f"and codes starts again from now.")


def end_pending(user: User, staff: User) -> ActionResult:
    """End every sign-in of this client still waiting for a code (the caller commits)."""
    ended = [sign_in for sign_in in pending_sign_ins(user)
             if codes.end_sign_in(sign_in, "cancelled")]
    for sign_in in ended:
        audit.record("signin_cancelled", user_id=user.id, sign_in_id=sign_in.id,
                     actor_id=staff.id, detail={"by": "support"})
    if not ended:
        return ActionResult(False, f"{user.email} has no sign-in waiting for a code.")
    count = len(ended)
    return ActionResult(True, f"Ended {count} sign-in{'s' if count != 1 else ''} of "
                              f"{user.email}; their codes no longer work.")


# A staff "send a link" repeated this soon after the same action is a double click, or two
# of the staff at once, not a new need: the first link's email has left, the link still
# works, and a new link would end it, so the client would open a link that no longer works.
# (Replaced before its email left, a link costs nothing: that email is cancelled unsent.)
LINK_AGAIN_AFTER = timedelta(minutes=1)
# The staff action that sends each kind of link, by its audit event.
_LINK_ACTIONS = {"reset": "password_reset_requested", "invitation": "invitation_resent"}


def link_just_sent(user: User, purpose: str) -> Optional[AccountToken]:
    """The live link of `purpose` that staff sent this account with the same action less
    than LINK_AGAIN_AFTER ago, and whose email has left; None when there is none.

    Takes the account's row lock first (on SQLite, the write lock), so that of two posts at
    once the second reads the first's link; the caller commits or rolls back. The lock is
    codes.hold_account's, which an audit row already written cannot deadlock with."""
    codes.hold_account(user)
    since = clock.now() - LINK_AGAIN_AFTER
    row = db.session.scalar(
        select(AccountToken).where(
            AccountToken.user_id == user.id, AccountToken.purpose == purpose,
            AccountToken.used_at.is_(None), AccountToken.revoked_at.is_(None),
            AccountToken.created_by_id.is_not(None), AccountToken.created_at > since)
        .order_by(AccountToken.created_at.desc()).limit(1))
    if row is None:
        return None
    by_staff = db.session.scalar(
        select(Event.id).where(Event.user_id == user.id, Event.type == _LINK_ACTIONS[purpose],
                               Event.actor_id.is_not(None), Event.created_at > since).limit(1))
    left = db.session.scalar(
        select(Delivery.id).where(Delivery.user_id == user.id, Delivery.kind == purpose,
                                  Delivery.sent_at.is_not(None),
                                  Delivery.created_at >= row.created_at).limit(1))
    return row if by_staff is not None and left is not None else None


def given_back_just_now(user: User) -> Optional[tuple[Event, AccountToken]]:
    """The give-back by staff less than LINK_AGAIN_AFTER ago, with the link to choose a new
    password it sent, when that link still works and its email has left; else None. Another
    give-back now would only end that link (a double click, or two of the staff at once).
    Takes the account's row lock, as link_just_sent does."""
    link = link_just_sent(user, "reset")
    if link is None:
        return None
    event = db.session.scalar(
        select(Event).where(Event.user_id == user.id, Event.type == "account_recovered",
                            Event.actor_id.is_not(None),
                            Event.created_at > clock.now() - LINK_AGAIN_AFTER)
        .order_by(Event.created_at.desc(), Event.id.desc()).limit(1))
    return (event, link) if event is not None else None


def given_back_just_now_words(user: User, event: Event, link: AccountToken) -> str:
    """What staff are told when the account was given back a moment ago."""
    from services.accounts.messages import when

    who = db.session.scalar(select(User.email).where(User.id == event.actor_id)) or "staff"
    return (f"{user.email} was given back at {clock.hhmm(event.created_at)}, under a minute "
            f"ago, by {who}. Nothing more was done: the link to choose a new password went to "
            f"{user.email} and works until {when(link.expires_at)}; giving it back again "
            "would end that link.")


def link_just_sent_words(user: User, row: AccountToken, what: str) -> str:
    """What staff are told when a link was sent a moment ago, and nothing more is sent."""
    from services.accounts.messages import when

    return (f"{what} went to {user.email} at {clock.hhmm(row.created_at)}, under a minute "
            f"ago; the link in it works until {when(row.expires_at)}. Nothing more was sent: a "
            f"new link would end that one. If they need another, send it from "
            f"{clock.hhmm(row.created_at + LINK_AGAIN_AFTER)}.")


# --- export ---------------------------------------------------------------------------

EXPORT_COLUMNS = (
    "sign-in", "began", "step time", "step", "details", "channel", "sent to", "IP address",
    "browser and device", "how it ended", "diagnosis",
)


def safe_cell(value) -> str:
    """A CSV cell a spreadsheet will not run as a formula."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def record_export(user: User, staff: User) -> None:
    """Note in the audit trail who exported a client's timeline (the caller commits)."""
    audit.record("support_export", user_id=user.id, actor_id=staff.id, detail={"by": "support"})


# Account events exported after the sign-ins (the client page shows ACTIVITY_LIMIT).
EXPORT_ACTIVITY_LIMIT = 1000


def export_csv(user_id: int, tz: str) -> Iterator[str]:
    """The client's whole timeline as CSV text, a batch of sign-ins at a time."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)

    def flush() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    def when(moment) -> str:
        return clock.local(moment, tz).strftime("%Y-%m-%d %H:%M:%S") if moment else ""

    writer.writerow([f"{c} ({tz})" if c in ("began", "step time") else c
                     for c in EXPORT_COLUMNS])
    yield flush()
    before = None
    while True:
        shown, extra, _ = _page_of_sign_ins(user_id, before, EXPORT_BATCH)
        for view in load_views(shown, context=extra, tz=tz):
            sign_in = view.sign_in
            summary = " ".join(f.text for f in view.findings)
            for step in view.steps or [timeline.Step(sign_in.created_at, "Began")]:
                writer.writerow([safe_cell(v) for v in (
                    sign_in.id, when(sign_in.created_at), when(step.at), step.what, step.detail,
                    sign_in.channel, view.destination, sign_in.ip, view.device, view.ending,
                    summary,
                )])
            yield flush()
        if not extra:
            break
        # The session holds rows weakly, so each written batch can be freed as we go.
        before = shown[-1].id
    # The account's own events (wrong passwords, locks, unlocks, switches, staff actions),
    # which belong to no sign-in, follow in rows of their own (issue 11).
    user = db.session.get(User, user_id)
    if user is not None:
        for step in account_activity(user, tz, limit=EXPORT_ACTIVITY_LIMIT):
            writer.writerow([safe_cell(v) for v in (
                "", "", when(step.at), step.what, step.detail, "", "", "", "", "account", "",
            )])
        yield flush()


# --- accounts without a shell: what went wrong with the account's links ----------------

LINK_FINDING_DAYS = 30
LINK_FINDING_LIMIT = 5


def account_findings(user: User, tz: str) -> list[diagnosis.Finding]:
    """Why the client's invitation or reset links did not work lately (see diagnosis.py)."""
    from services.accounts import tokens

    refused = db.session.scalars(
        select(Event).where(Event.user_id == user.id, Event.type == "link_refused",
                            Event.created_at >= clock.now() - timedelta(days=LINK_FINDING_DAYS))
        .order_by(Event.created_at.desc()).limit(LINK_FINDING_LIMIT)
    ).all()
    return diagnosis.account_findings(list(refused), tokens.latest(user, "invitation"),
                                      user.has_password, tz)
