"""Inviting clients: one at a time (console or `flask users invite`) or many from a CSV.

An invited client is a user without a password. The invitation email carries a link to
/welcome/<token>, good for 7 days, where they choose one; then they sign in as usual.
A CSV import is checked whole first (a preview names each row's problem) and imported in one
transaction: either every row, or none.
"""

from __future__ import annotations

import codecs
import csv
import io
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NamedTuple, Optional

from sqlalchemy import func, select

from extensions import db
from models import CHANNELS, ROLES, AccountToken, Delivery, Event, User
from services import audit, clock, emails
from services.accounts import lifecycle, messages, tokens
from services.phones import check_uk_mobile

MAX_NAME_LENGTH = 200
MAX_IMPORT_ROWS = 500
CSV_COLUMNS = ("email", "name", "phone")
# Unicode's direction overrides, embeddings and isolates: in a name they reorder how it, and
# the text after it, is shown. The plain direction marks (U+200E, U+200F) stay allowed: a
# right-to-left name may need them.
TURNS_TEXT_AROUND = frozenset(map(chr, [*range(0x202A, 0x202F), *range(0x2066, 0x206A)]))


class Issue(NamedTuple):
    """One thing wrong with a candidate, and what it is about: "email", "name", "phone",
    "channel" or "role" (the console form's fields), or "row" (a CSV row as a whole)."""

    about: str
    message: str


@dataclass
class Candidate:
    """One person to invite, with what is wrong with them, if anything."""

    email: str
    name: str = ""
    phone: str = ""
    channel: str = "email"
    role: str = "client"
    line: int = 0
    e164: Optional[str] = None
    issues: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.issues

    @property
    def problems(self) -> list[str]:
        """What is wrong, in words, in the order found."""
        return [issue.message for issue in self.issues]

    def refuse(self, about: str, message: str) -> None:
        """Note a problem with the field it is about."""
        self.issues.append(Issue(about, message))

    @property
    def only_taken(self) -> bool:
        """Whether the one thing wrong is that the address has an account already."""
        return self.issues == [Issue("email", taken_words(self.email))]


def taken_words(email: str) -> str:
    return f"{email} already has an account."


def _email_problem(email: str) -> Optional[str]:
    """The one rule for addresses (services.emails), worded for a row of a list."""
    if not email:
        return "The email address is missing."
    if len(email) > emails.MAX_LENGTH:
        return "The email address is too long."
    problem = emails.email_problem(email)
    if problem == emails.NOT_SENDABLE:
        return f"“{email}”: {problem}"
    if problem:
        return f"“{email}” is not an email address."
    return None


def check(candidate: Candidate, taken: Optional[set[str]] = None) -> Candidate:
    """Fill in `issues`, each with the field it is about (and the phone in E.164); `taken`
    holds addresses already in use."""
    candidate.email = emails.canonical(candidate.email)
    candidate.name = " ".join(candidate.name.split())
    problem = _email_problem(candidate.email)
    if problem:
        candidate.refuse("email", problem)
    elif taken is not None and candidate.email in taken:
        candidate.refuse("email", taken_words(candidate.email))
    elif taken is None and db.session.scalar(
            select(User.id).where(User.email == candidate.email)) is not None:
        candidate.refuse("email", taken_words(candidate.email))
    if len(candidate.name) > MAX_NAME_LENGTH:
        candidate.refuse("name", f"The name is longer than {MAX_NAME_LENGTH} characters.")
    elif any(unicodedata.category(ch) == "Cc" for ch in candidate.name):
        # An escape sequence would reach the operator's terminal through `users list`.
        candidate.refuse("name", "The name has a control character in it (pasted from "
                                 "somewhere?): type it again.")
    elif any(ch in TURNS_TEXT_AROUND for ch in candidate.name):
        # "\u202enimda" shows as "admin" in the console, in emails and in `users list`.
        candidate.refuse("name", "The name has a hidden character in it that turns the text "
                                 "around (pasted from somewhere?): type it again.")
    if candidate.phone.strip():
        verdict = check_uk_mobile(candidate.phone)
        if verdict.ok:
            candidate.e164 = verdict.e164
        else:
            candidate.refuse("phone", f"{verdict.problem} Text messages work only for "
                                      "UK mobile numbers.")
    if candidate.channel not in CHANNELS:
        candidate.refuse("channel", "Codes go by email or by text message.")
    elif candidate.channel == "sms" and candidate.e164 is None and not candidate.phone.strip():
        # Said where the number goes: typing one is how to put it right.
        candidate.refuse("phone", "Codes by text message need a UK mobile number.")
    if candidate.role not in ROLES:
        candidate.refuse("role", "That is not a role.")
    return candidate


def just_invited(candidates: list[Candidate], actor: User) -> bool:
    """Whether every one of these candidates was invited, just as they are, by `actor` within
    lifecycle.DOUBLE_PRESS and has not accepted yet: a second press of the button that invited
    them. A changed name or number is no double press: the address is taken, as the form says."""
    if not candidates:
        return False
    users = {u.email: u for u in db.session.scalars(
        select(User).where(User.email.in_([c.email for c in candidates]))).all()}
    if any(c.email not in users or users[c.email].has_password
           or (users[c.email].name or "", users[c.email].phone, users[c.email].channel,
               users[c.email].role) != (c.name, c.e164, c.channel, c.role)
           for c in candidates):
        return False
    invited_now = set(db.session.scalars(
        select(Event.user_id).where(
            Event.type == "user_invited", Event.actor_id == actor.id,
            Event.user_id.in_([u.id for u in users.values()]),
            Event.created_at > clock.now() - lifecycle.DOUBLE_PRESS)).all())
    return invited_now == {u.id for u in users.values()}


def invite(candidate: Candidate, *, actor: Optional[User], by: str = "support") -> User:
    """Make the account of a checked candidate and queue its invitation (the caller commits)."""
    assert candidate.ok, candidate.problems
    user = User(
        email=candidate.email, name=candidate.name or None, password_hash="",
        role=candidate.role, channel=candidate.channel, phone=candidate.e164,
        # The firm typed the number; like `flask users add --phone`, it counts as proved.
        phone_verified_at=clock.now() if candidate.e164 else None, created_at=clock.now(),
    )
    db.session.add(user)
    db.session.flush()
    audit.record("user_invited", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": by, "role": user.role, "channel": user.channel})
    send_invitation(user, actor)
    return user


def send_invitation(user: User, actor: Optional[User]) -> None:
    """Queue a new invitation link (ending any earlier one). The caller commits."""
    token, row = tokens.issue(user, "invitation", created_by=actor)
    db.session.flush()
    messages.queue_link(user, row, token, "invitation", values={
        "name": user.name or "", "email": user.email, "channel": user.channel})


# --- CSV import -----------------------------------------------------------------------

@dataclass
class Preview:
    """A CSV read and checked: every row with its problems, and problems with the file."""

    rows: list[Candidate] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.rows) and not self.problems and all(r.ok for r in self.rows)

    @property
    def bad_rows(self) -> int:
        return sum(1 for r in self.rows if not r.ok)


SPREADSHEET_FILE = ("This is a spreadsheet's own file (such as .xlsx), not a CSV. In your "
                    "spreadsheet choose Save As (or Download), pick “CSV UTF-8”, and "
                    "choose that file here.")
NOT_TEXT = ("The file is not text. Save it from your spreadsheet as “CSV UTF-8” and "
            "try again.")
# How the spreadsheet programs' own files begin: .xlsx and .ods are ZIP files, .xls is OLE.
SPREADSHEET_MAGIC = (b"PK\x03\x04", b"\xd0\xcf\x11\xe0")


def csv_text(raw: bytes) -> tuple[Optional[str], str]:
    """The text of an uploaded CSV, or None and why it cannot be read.

    UTF-8 first, with or without Excel's byte order mark. Excel on Windows saves a plain
    "CSV (Comma delimited)" in Windows-1252, where the "ë" of "Zoë" is a byte UTF-8 refuses:
    such a file is read as Windows-1252, and the preview shows every name before anything
    is imported."""
    if raw.startswith(SPREADSHEET_MAGIC):
        return None, SPREADSHEET_FILE
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Excel's "Unicode Text" (tab-separated, UTF-16): read_csv finds the tabs.
        try:
            return raw.decode("utf-16"), ""
        except UnicodeDecodeError:
            return None, NOT_TEXT
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return raw.decode(encoding), ""
        except UnicodeDecodeError:
            continue
    return None, NOT_TEXT


# The headings people give these columns, lowercased, without spaces, dashes or underscores.
HEADINGS = {
    "email": ("email", "emailaddress", "mail"),
    "name": ("name", "fullname", "clientname", "client", "contactname"),
    "phone": ("phone", "mobile", "mobilenumber", "phonenumber", "mobilephone", "ukmobile",
              "ukmobilenumber", "telephone", "tel", "cell", "mob"),
}


def _delimiter(text: str) -> str:
    """What separates the cells: a comma, or the semicolon of a spreadsheet set up for a
    country that writes 1,5, or the tab of rows pasted straight from a spreadsheet. The one
    that splits the first line into the most cells wins; a comma when none splits it."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    widths = {d: len(next(csv.reader([first], delimiter=d), [])) for d in (",", ";", "\t")}
    return max(widths, key=lambda d: (widths[d], d == ","))


def _heading(cell: str) -> Optional[str]:
    """"email", "name" or "phone" for a heading people give that column, else None."""
    word = "".join(cell.lower().replace("-", "").replace("_", "").split())
    return next((about for about, words in HEADINGS.items() if word in words), None)


def _columns(headings: list[str]) -> tuple[tuple, Optional[str]]:
    """Which column holds the email, name and phone, read from the headings row; or why not."""
    found: dict[str, int] = {}
    for index, heading in enumerate(headings):
        if not heading.strip():
            continue
        about = _heading(heading)
        if about is None:
            return (), (f"We do not know the column “{heading.strip()}” in the first row. "
                        "Use the headings email, name and phone (name and phone may be left "
                        "out), or take that column out.")
        if about in found:
            return (), f"The headings name the {about} column twice. Keep one."
        found[about] = index
    if "email" not in found:
        return (), ("The first row has no email address, so we read it as the headings, but "
                    "none of them is “email”. Put the headings email, name and phone over "
                    "the columns, or start the file with the first client.")
    return (found["email"], found.get("name"), found.get("phone")), None


def read_csv(text: str) -> Preview:
    """Check a CSV of `email,name,phone` (a header row is optional) before importing it.

    Cells may be separated by commas, semicolons or tabs; a first row of headings (any of
    HEADINGS, in any order) says which column is which."""
    preview = Preview()
    text = text.lstrip("\ufeff")  # Excel's byte order mark
    if not text.strip():
        preview.problems.append("The file is empty.")
        return preview
    if "\x00" in text:  # not text at all; PostgreSQL would refuse it in any query
        preview.problems.append("The file holds a character that is not text (a NUL). Save "
                                "it from your spreadsheet as CSV, UTF-8, and try again.")
        return preview
    try:
        lines = list(csv.reader(io.StringIO(text), delimiter=_delimiter(text)))
    except csv.Error as exc:
        preview.problems.append(f"The file is not a CSV we can read ({exc}).")
        return preview
    numbered = [(n, row) for n, row in enumerate(lines, start=1) if any(c.strip() for c in row)]
    columns = (0, 1, 2)
    if numbered and not any("@" in cell for cell in numbered[0][1]) and any(
            _heading(cell) for cell in numbered[0][1]):
        # The headings, in whatever words and order people give them.
        columns, problem = _columns(numbered[0][1])
        if problem:
            preview.problems.append(problem)
            return preview
        numbered = numbered[1:]
    if len(numbered) > MAX_IMPORT_ROWS:
        preview.problems.append(f"The file has {len(numbered)} rows; import at most "
                                f"{MAX_IMPORT_ROWS} at a time.")
        return preview
    if not numbered:
        preview.problems.append("The file has a header but no clients.")
        return preview
    addresses = [emails.canonical(row[columns[0]]) for _, row in numbered
                 if len(row) > columns[0]]
    taken = set(db.session.scalars(select(User.email).where(User.email.in_(addresses))).all())
    seen: dict[str, int] = {}
    for line, row in numbered:
        cells = [c.strip() for c in row]
        email, name, phone = (cells[i] if i is not None and i < len(cells) else ""
                              for i in columns)
        candidate = Candidate(email=email, name=name, phone=phone, line=line, channel="email")
        check(candidate, taken)
        if any("\n" in c or "\r" in c for c in row):
            # A quote mark opened and never closed swallows the rows after it into one cell.
            candidate.refuse("row", "A quote mark (\") on this row is never closed, so the "
                                    "rows after it were read as part of it. Take the quote "
                                    "mark out, or close it.")
        elif any(c.strip() for i, c in enumerate(row) if i not in columns):
            candidate.refuse("row", "The row has more than 3 columns (email, name, phone).")
        if candidate.email in seen:
            candidate.refuse("email", f"The same address is on row {seen[candidate.email]}.")
        else:
            seen.setdefault(candidate.email, line)
        preview.rows.append(candidate)
    return preview


def import_all(preview: Preview, actor: User) -> list[User]:
    """Invite every row of a checked preview, in the caller's one transaction."""
    if not preview.ok:
        raise ValueError("the CSV has problems; nothing may be imported")
    return [invite(row, actor=actor, by="import") for row in preview.rows]


# --- who has not accepted yet ---------------------------------------------------------

@dataclass(frozen=True)
class Pending:
    user: User
    sent_at: Optional[datetime]
    expires_at: Optional[datetime]
    expired: bool


def pending(hidden_roles: tuple[str, ...] = ()) -> list[Pending]:
    """Invited accounts still without a password (active ones), newest invitation first.

    `hidden_roles` are left out in the query (admins, for support staff), so that the list
    and its length say nothing about accounts the reader may not see."""
    users = db.session.scalars(
        select(User).where(User.password_hash == "", User.deactivated_at.is_(None),
                           User.role.not_in(hidden_roles))
        .order_by(User.created_at.desc()).limit(500)
    ).all()
    newest = {}
    if users:
        latest = (select(AccountToken.user_id, func.max(AccountToken.id).label("id"))
                  .where(AccountToken.purpose == "invitation",
                         AccountToken.user_id.in_([u.id for u in users]))
                  .group_by(AccountToken.user_id).subquery())
        newest = {row.user_id: row for row in db.session.scalars(
            select(AccountToken).join(latest, AccountToken.id == latest.c.id))}
    at = clock.now()
    result = [Pending(user=u, sent_at=newest[u.id].created_at if u.id in newest else None,
                      expires_at=newest[u.id].expires_at if u.id in newest else None,
                      expired=u.id not in newest or newest[u.id].expires_at <= at
                      or newest[u.id].revoked_at is not None)
              for u in users]
    return sorted(result, key=lambda p: p.sent_at or p.user.created_at, reverse=True)


# Events that switch an account off or on; the newest says why an invited account is off.
SWITCHES = ("invitation_revoked", "account_deactivated", "account_reactivated")


def withdrawn(user: User) -> bool:
    """Whether an invited account is off only because its invitation was withdrawn.

    Sending a new invitation may undo a withdrawal, but never a staff member's decision to
    switch the account off (`lifecycle.deactivate`): that takes "Switch the account on again".
    With no event to tell (pruned by retention), the answer is no, the safe side."""
    if user.is_active or user.has_password:
        return False
    newest = db.session.scalar(
        select(Event.type).where(Event.user_id == user.id, Event.type.in_(SWITCHES))
        .order_by(Event.created_at.desc(), Event.id.desc()).limit(1))
    return newest == "invitation_revoked"


def may_resend(user: User) -> bool:
    """Whether "Send the invitation again" is for this account now."""
    return not user.has_password and (user.is_active or withdrawn(user))


def links_paused_until(user: User) -> Optional[datetime]:
    """When staff may send this account another reset or invitation link, if not now.

    Links staff send count towards the same hourly cap as the public "Forgotten your
    password?" form (lifecycle.RESETS_PER_HOUR), so neither can flood someone's inbox."""
    if lifecycle._links_sent_lately(user.id) < lifecycle.RESETS_PER_HOUR:
        return None
    newest = db.session.scalars(
        select(Delivery.created_at).where(
            Delivery.user_id == user.id, Delivery.kind.in_(("reset", "invitation")),
            Delivery.status.not_in(("cancelled",)),
            Delivery.created_at > clock.now() - timedelta(hours=1))
        .order_by(Delivery.created_at.desc()).limit(lifecycle.RESETS_PER_HOUR)
    ).all()
    # The cap lets another link go once the oldest of the newest few is an hour old.
    return min(newest) + timedelta(hours=1) if newest else None


def link_cap_problem(user: User) -> Optional[str]:
    """Why staff may not send this account another link now (the hourly cap), or None."""
    until = links_paused_until(user)
    if until is None:
        return None
    return (f"{user.email} has been sent {lifecycle.RESETS_PER_HOUR} links in the last hour, "
            f"the most we send, so nothing was sent. You can send another at "
            f"{messages.when(until)}.")


def resend(user: User, actor: Optional[User]) -> Optional[str]:
    """Send a fresh invitation to someone who has not accepted yet (the caller commits).

    Returns None when it is on its way, or why not, in words for staff."""
    if user.has_password:
        return f"{user.email} has already accepted their invitation."
    if not may_resend(user):
        return (f"{user.email} is switched off, so no invitation was sent. Switch the account "
                "on again first if they should have one.")
    problem = link_cap_problem(user)
    if problem:
        return problem
    by = "support" if actor else "cli"
    if not user.is_active:
        # Inviting again undoes a withdrawn invitation; say so in the trail, with who did it.
        lifecycle.reactivate(user, actor, by=by)
    audit.record("invitation_resent", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": by})
    send_invitation(user, actor)
    return None


def revoke(user: User, actor: Optional[User]) -> bool:
    """Withdraw an invitation not accepted yet: its link stops working, the account is off."""
    if user.has_password or not user.is_active:
        return False
    tokens.revoke(user, "invitation")
    user.deactivated_at = clock.now()
    audit.record("invitation_revoked", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": "support" if actor else "cli"})
    return True
