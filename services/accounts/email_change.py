"""Changing the sign-in email: the new address is proved by a link sent to it first.

Asking says the same thing whether or not the new address belongs to another account:
if it does, its owner gets a note that it already has an account instead of a link, so the
form cannot be used to find out who has an account. The current address is told at once
that a change was asked for, and how to stop it. Once the link is used, the address
changes, every session and pending sign-in ends, and the old address is told.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Optional

from sqlalchemy import select

from extensions import db
from models import AccountToken, Event, User
from services import audit, clock, emails
from services.accounts import messages, tokens
from services.signin.codes import end_pending_sign_ins, hold_account
from services.accounts.lifecycle import end_sessions, link_outcome, refusal
from services.authenticators import trusted_devices
from services.masking import mask_destination
from services.urls import absolute_url

REQUESTS_PER_HOUR = 3


def address_problem(user: User, new_email: str) -> Optional[str]:
    """What is wrong with the address typed, said plainly; None if it may be asked for."""
    problem = emails.email_problem(new_email)
    if problem:
        return problem
    if new_email == user.email:
        return "That is the address you sign in with already."
    return None


def waiting(user: User) -> Optional[AccountToken]:
    """The latest request for a new sign-in email whose link can still be used, if any."""
    row = tokens.latest(user, "email")
    return row if row is not None and tokens.check_row(row).ok else None


def next_request_at(user: User) -> Optional[datetime]:
    """When this account may ask for another new address, if it has asked REQUESTS_PER_HOUR
    times in the last hour; else None.

    Each request emails the address typed (a link, or a note that it has an account) and the
    account's own address: the per-minute limits alone would let a signed-in client send 20
    of each an hour to anyone. Only the account's own requests count, so the answer says
    nothing about other accounts.

    The account's row is locked first, until the caller commits (with the request, or with
    the refusal): requests posted at once, on one server's workers or on several servers,
    then count one after another, and none reads "two so far" while another is sending the
    third."""
    hold_account(user)
    decider = db.session.scalar(
        select(Event.created_at)
        .where(Event.user_id == user.id, Event.type == "email_change_requested",
               Event.created_at > clock.now() - timedelta(hours=1))
        .order_by(Event.created_at.desc()).offset(REQUESTS_PER_HOUR - 1).limit(1))
    return None if decider is None else decider + timedelta(hours=1)


def request_change(user: User, new_email: str) -> None:
    """Send the proof link to the new address, or (when it has an account) a note to it.
    The caller commits.

    Either way a link is made, ending the earlier one, so the page shows the same "we sent
    a link" afterwards; for a taken address it is never sent (and `confirm` would refuse it).
    """
    owner = db.session.scalar(select(User.id).where(User.email == new_email))
    audit.record("email_change_requested", user_id=user.id,
                 detail={"to": mask_destination("email", new_email)})
    token, row = tokens.issue(user, "email", new_email=new_email)
    tell_current_address(user, row)
    if owner is not None:
        messages.queue_notice(user, "email_in_use", destination=new_email,
                              values={"new_email": new_email})
        return
    db.session.flush()
    messages.queue_link(user, row, token, "email_proof", destination=new_email,
                        values={"new_email": new_email})


def tell_current_address(user: User, row: AccountToken) -> None:
    """Tell the address the account signs in with now that a change was asked for, and how
    to stop it, while it can still be stopped: whoever asked may not be its owner.

    The same note whether or not the new address has an account, so that it says nothing
    about other people's accounts."""
    messages.queue_notice(user, "email_change_requested", values={
        "new_email": mask_destination("email", row.new_email),
        "expires": messages.when(row.expires_at),
        "devices_url": absolute_url("devices.index")})


@dataclass(frozen=True)
class Confirmed:
    ok: bool
    old_email: str = ""
    new_email: str = ""
    message: str = ""


def taken(new_email: str) -> Confirmed:
    """The answer when the new address belongs to another account by now."""
    return Confirmed(False, message=f"{new_email} now belongs to another account, so nothing "
                                    "has changed.")


def confirm(check: tokens.Check, keep_token: Optional[str]) -> Confirmed:
    """Use a valid proof link: the address changes (the caller commits, and meets the unique
    index if another account took the address since the check here)."""
    row, user = check.token, check.user
    # The account's row first, as a reset link takes it: used at once, one goes after the
    # other, and the second finds its link ended (lifecycle.use_link).
    hold_account(user)
    if db.session.scalar(select(User.id).where(User.email == row.new_email)) is not None:
        return taken(row.new_email)
    if not tokens.use(row):
        return Confirmed(False, message=refusal("email", link_outcome(row)).message)
    old = user.email
    user.email = row.new_email
    trusted_devices.forget_all(user.id, "email changed")
    keep = keep_token if keep_token else None
    ended = end_sessions(user, keep)
    end_pending_sign_ins(user, by="email")
    tokens.revoke(user, "reset", "email")
    audit.record("email_changed", user_id=user.id,
                 detail={"from": mask_destination("email", old),
                         "to": mask_destination("email", user.email), "sessions_ended": ended})
    messages.queue_notice(user, "email_changed", destination=old,
                          values={"new_email": mask_destination("email", user.email),
                                  "kept_here": keep is not None})
    return Confirmed(True, old_email=old, new_email=user.email)
