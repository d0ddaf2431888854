"""Setting a password, forgotten passwords, and staff switching accounts off and on.

Whatever changes who can sign in (a new password, deactivation) ends the account's sessions
and sign-ins waiting for a code, ends its links, is audited, and is told to the client by
email through the outbox.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Optional

from flask import current_app
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from extensions import db
from models import Delivery, Event, User
from services import audit, clock, contact, delivery, emails, keys
from services.signin import limits, passwords, phone_proofs, sessions
from services.accounts import messages, policy, tokens
from services.signin.codes import end_pending_sign_ins, hold_account
from services.authenticators import passkeys, totp, trusted_devices
from services.masking import mask_destination

# Reset emails one account may be sent in an hour; more requests are answered the same
# way but send nothing, so the form cannot be used to flood someone's inbox.
RESETS_PER_HOUR = 3


def password_problem(user: User, password: str) -> Optional[str]:
    """Why this new password cannot be the user's, or None."""
    return policy.problem(password, email=user.email, firm=current_app.config["PORTAL_NAME"])


# How each way of setting a password is told in the notice email ("changed at 10:05 ...").
HOW = {
    "reset": "using a link to set a new password",
    "change": "from your account page",
    "invitation": "when you accepted your invitation",
    "cli": "by our staff",
}
# Ways of setting a password that recover an account (the client may not be the only one
# in it): they also remove its passkeys, which sign in without the password.
RECOVERY = ("reset", "cli")
# Ways of setting a password with a link from the account's mailbox: for an account whose
# codes come by email they lift a lock from wrong passwords or codes (the guesses were at the
# old password), so "now sign in" is true. Not where codes come by text or from an app:
# there the lock also guards that second factor, and whoever held the mailbox could otherwise
# buy ten more guesses at it with each reset link (three an hour).
MAILBOX_PROVED = ("reset", "invitation")


def reset_ends_a_lock(user: User) -> bool:
    """Whether a new password set with a link from the mailbox lifts this account's lock: only
    where the mailbox is already the way the codes come, so lifting gives it nothing more."""
    return user.channel == "email"


def set_password(user: User, password: str, *, by: str, keep_token: Optional[str] = None,
                 actor: Optional[User] = None, notify: bool = True,
                 form_mark: Optional[str] = None) -> int:
    """Give the user this password (checked by the caller), end their sessions except the one
    with `keep_token`, their sign-ins waiting for a code and their links (and, when it
    recovers the account, its passkeys; when a link from the mailbox set it, a lock from
    wrong passwords or codes); audit and tell them.
    `form_mark` names the form that set it (blueprints/passwords.py tells a second press of
    the same form by it). Returns how many sessions ended. The caller commits."""
    first = not user.has_password
    user.password_hash = passwords.hash_password(password)
    user.password_changed_at = clock.now()
    trusted_devices.forget_all(user.id, "password changed")
    removed = passkeys.remove_all(user.id, f"password {by}") if by in RECOVERY else []
    ended = end_sessions(user, keep_token)
    end_pending_sign_ins(user, by="password")
    tokens.revoke(user, "reset", "email")
    if by in MAILBOX_PROVED and reset_ends_a_lock(user) and (
            user.is_locked(clock.now()) or limits.failures_counted(user)):
        limits.unlock_account(user, by=by)
    audit.record("password_set", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": by, "sessions_ended": ended, "passkeys_removed": len(removed),
                         **({"form": form_mark} if form_mark else {})})
    if notify and not first:
        messages.queue_notice(user, "password_changed", values={
            "how": HOW.get(by, ""), "kept_here": keep_token is not None,
            "passkeys_removed": removed})
    return ended


def end_sessions(user: User, keep_token: Optional[str] = None) -> int:
    """End every session of the user but the one with `keep_token`."""
    if keep_token is None:
        return sessions.revoke_all_for(user.id)
    return sessions.revoke_live(user.id, keep_token=keep_token)


def use_link(check: tokens.Check) -> bool:
    """Use up a link found valid, once, holding the account's row until the caller commits;
    False when it cannot be used any more.

    A reset link and a link to a new sign-in address, used at once, would each use itself up
    and then wait to end the other (on PostgreSQL a deadlock, and a 500 for one of them). Held
    first, they go one after the other, and the second finds its link ended by the first."""
    hold_account(check.user)
    return tokens.use(check.token)


def link_outcome(row) -> str:
    """What a link that could not be used up turned out to be, read again after the request
    that got there first (used, withdrawn, or its account changed)."""
    db.session.refresh(row)
    outcome = tokens.check_row(row).outcome
    return tokens.USED if outcome == tokens.VALID else outcome


# --- forgotten passwords --------------------------------------------------------------

def _links_sent_lately(user_id: int) -> int:
    return db.session.scalar(
        select(func.count(Delivery.id)).where(
            Delivery.user_id == user_id, Delivery.kind.in_(("reset", "invitation")),
            Delivery.status.not_in(("cancelled",)),
            Delivery.created_at > clock.now() - timedelta(hours=1))
    ) or 0


# A button pressed again within this time of the press that did its work is the same wish
# (a double click, a press repeated while the page loads): "Send me a link" sends nothing
# more, the link on its way still works; "Save my password" and staff's "Send the invitation"
# (blueprints/passwords.py, invitations.just_invited) are told it is done.
DOUBLE_PRESS = timedelta(minutes=1)


def _link_just_made(user_id: int, item: Delivery) -> bool:
    """Whether another "Send me a link" of this account's, asked for within DOUBLE_PRESS
    before this one (or since), has already been made into a link (prepare_reset's own
    record of it). Links staff or the command line sent do not count: those were not the
    client's press."""
    return db.session.scalar(
        select(Event.id).join(Delivery, Delivery.id == Event.delivery_id).where(
            Event.type == "password_reset_requested", Event.user_id == user_id,
            Event.outcome == "sent", Delivery.id != item.id,
            Delivery.created_at >= item.created_at - DOUBLE_PRESS,
        ).limit(1)
    ) is not None


def request_reset(email: str) -> None:
    """"Forgotten your password?": queue a request for a reset link to the address typed.

    The request only adds the same outbox row whatever the address; the dispatcher then looks
    the account up (`prepare_reset`) and sends a link, or nothing. So the answer and its timing
    say nothing about whether the address has an account. The caller commits.
    """
    delivery.queue_message(
        user_id=None, channel="email", destination=email.strip().lower()[:254],
        kind="reset_request", template="password_reset",
        values={"when": messages.when(clock.now())},
        give_up_at=clock.now() + tokens.LIFETIMES["reset"],
    )


def prepare_reset(item: Delivery) -> Optional[str]:
    """In the dispatcher: make the reset link of a queued request, or say why none is sent.

    Someone invited who has not chosen a password yet (and lost the invitation) gets a new
    invitation instead, which is what they need.
    """
    user = db.session.scalar(select(User).where(User.email == item.destination))
    usable = user is not None and user.is_active
    if usable:
        # Counted under the account's row lock: the senders of every worker and server
        # prepare requests at once, and each must see the links the others have made.
        hold_account(user)
    if usable and _links_sent_lately(user.id) >= RESETS_PER_HOUR:
        reason = "capped"
    elif usable and _link_just_made(user.id, item):
        # A double click on "Send me a link": a second link would end the first, and the
        # client clicks the first email to arrive.
        reason = "a link asked for under a minute before still works"
    else:
        reason = None if usable else "no usable account"
    audit.record("password_reset_requested", user_id=user.id if user else None,
                 delivery_id=item.id, outcome="not_sent" if reason else "sent",
                 detail={"by": "client", **({"reason": reason} if reason else {})})
    if reason:
        return "no link sent: " + reason
    purpose = "reset" if user.has_password else "invitation"
    token, row = tokens.issue(user, purpose)
    values = {**((item.payload or {}).get("values") or {}), **messages.common_links(),
              "link_endpoint": messages.LINK_ENDPOINTS[purpose],
              "expires": messages.when(row.expires_at)}
    if purpose == "invitation":
        values.update(name=user.name or "", email=user.email, channel=user.channel)
    item.user_id, item.kind = user.id, messages.DELIVERY_KINDS[purpose]
    item.code_encrypted = keys.encrypt_secret(token)
    item.give_up_at = row.expires_at
    item.payload = {"template": "password_reset" if purpose == "reset" else "invitation",
                    "values": values}
    return None


delivery.PREPARERS["reset_request"] = prepare_reset


def send_reset(user: User, actor: Optional[User] = None, *, given_back: bool = False,
               switched_on: bool = False) -> None:
    """Queue a new reset link to the user (ending earlier ones). The caller commits.
    `given_back`: the link comes with the account given back (recover), and the email says
    why, not "someone asked"; `switched_on`, that the account is switched on again too."""
    token, row = tokens.issue(user, "reset", created_by=actor)
    audit.record("password_reset_requested", user_id=user.id, outcome="sent",
                 actor_id=actor.id if actor else None,
                 detail={"by": "support" if actor else "client"})
    db.session.flush()
    messages.queue_link(user, row, token, "password_reset",
                        values={"when": messages.when(clock.now()), "given_back": given_back,
                                "switched_on": switched_on})


@dataclass(frozen=True)
class LinkRefusal:
    """Why a link from an email cannot be used, said to the person holding it."""

    title: str
    message: str


NOT_VALID = LinkRefusal(
    "This link does not work",
    "It may have been replaced by a newer one, or something changed on the account since it "
    "was sent. Use the newest email we sent, or ask for a new link.")


# A link refused because the firm switched its account off (or withdrew the invitation),
# whatever else became of it: no new link will come, so "ask for a new one" is no way on.
SWITCHED_OFF = "switched_off"


def refused_outcome(check: tokens.Check) -> str:
    """What the person holding a refused link is told it is: SWITCHED_OFF for an account the
    firm has switched off (its owner was emailed when it was), else the link's own outcome."""
    if check.user is not None and not check.user.is_active:
        return SWITCHED_OFF
    return check.outcome


def refusal(purpose: str, outcome: str) -> LinkRefusal:
    """Why a link of this purpose cannot be used; made when said, so that "contact us" says
    how when PORTAL_CONTACT is set."""
    if outcome == SWITCHED_OFF:
        if purpose == "invitation":
            return LinkRefusal(
                "This invitation has been withdrawn",
                "The firm has withdrawn this invitation, so the link no longer works. If you "
                f"think that is a mistake, please {contact.contact_us()}.")
        return LinkRefusal(
            "Your account is switched off",
            "The firm has switched your account off, so this link cannot be used. To have it "
            f"switched on again, please {contact.contact_us()}.")
    return {
        ("reset", tokens.EXPIRED): LinkRefusal(
            "This link has run out",
            "Links to set a new password work for one hour. Ask for a new one below."),
        ("reset", tokens.USED): LinkRefusal(
            "This link has already been used",
            "Each link works once. If you still need a new password, ask for a new link."),
        ("invitation", tokens.EXPIRED): LinkRefusal(
            "This invitation has run out",
            "Invitations work for 7 days. To get a new one, enter your email address on the "
            f"“Forgotten your password?” page, or {contact.contact_us()}."),
        ("email", tokens.EXPIRED): LinkRefusal(
            "This link has run out",
            "Links to confirm a new email address work for one hour. Nothing has changed: you "
            "still sign in with your current address. To use the new one, sign in and ask "
            "again."),
        ("email", tokens.USED): LinkRefusal(
            "This link has already been used",
            "The new address was confirmed when the link was first used, so you now sign in "
            "with it. There is nothing more to do."),
        ("invitation", tokens.USED): LinkRefusal(
            "This invitation has already been used",
            "Your password is already set: sign in with your email address and password. "
            "If you have forgotten the password, set a new one."),
    }.get((purpose, outcome), NOT_VALID)


def note_refused_link(check: tokens.Check, purpose: str) -> None:
    """Audit a link that could not be used (support's diagnosis reads these)."""
    if check.token is not None:
        audit.record("link_refused", user_id=check.token.user_id, outcome=check.outcome,
                     detail={"purpose": purpose,
                             "expired_at": check.token.expires_at.isoformat(),
                             "used_at": check.token.used_at.isoformat()
                             if check.token.used_at else None})


# --- staff: switching an account off and on -------------------------------------------

def deactivate(user: User, actor: Optional[User], *, by: str = "support") -> bool:
    """Switch the account off: no sign-in, no codes, every session and link ended."""
    if not user.is_active:
        return False
    user.deactivated_at = clock.now()
    trusted_devices.forget_all(user.id, "account switched off")
    ended = sessions.revoke_all_for(user.id)
    end_pending_sign_ins(user, by="deactivated", actor_id=actor.id if actor else None)
    tokens.revoke(user)
    audit.record("account_deactivated", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": by, "sessions_ended": ended})
    if user.has_password:
        messages.queue_notice(user, "account_deactivated")
    return True


def reactivate(user: User, actor: Optional[User], *, by: str = "support",
               notify: bool = True) -> bool:
    """Switch the account on again; `notify`: email the client to say so."""
    if user.is_active:
        return False
    user.deactivated_at = None
    audit.record("account_reactivated", user_id=user.id, actor_id=actor.id if actor else None,
                 detail={"by": by})
    if notify and user.has_password:
        messages.queue_notice(user, "account_reactivated")
    return True


# --- giving an account back -----------------------------------------------------------

@dataclass(frozen=True)
class Recovered:
    """What giving an account back ended (for the operator's one line)."""

    old_email: str
    sessions_ended: int
    passkeys_removed: int
    app_removed: bool
    phone_removed: bool
    switched_on: bool

    def summary(self, user: User) -> str:
        """What was done, in one line: for the operator's terminal and the console's notice."""
        ended = [f"{self.sessions_ended} session{'s' if self.sessions_ended != 1 else ''}"]
        if self.passkeys_removed:
            ended.append(f"{self.passkeys_removed} "
                         f"passkey{'s' if self.passkeys_removed != 1 else ''}")
        if self.app_removed:
            ended.append("the authenticator app")
        if self.phone_removed:
            ended.append("the mobile number")
        moved = f" now signs in with {user.email};" if user.email != self.old_email else ""
        link = (f" A link to choose a new password is on its way to {user.email}."
                if user.has_password else "")
        link += " The account is switched on again." if self.switched_on else ""
        return (f"{self.old_email}:{moved} ended {', '.join(ended)}, every link and trusted "
                f"device; codes go by email.{link}")


def owner_address_problem(user: User, email: str) -> Optional[str]:
    """Why `email` (canonical) cannot be the address an account is given back to, or None."""
    problem = emails.email_problem(email)
    if problem is not None:
        return problem
    owner = db.session.scalar(select(User.id).where(User.email == email))
    if owner is not None and owner != user.id:
        return f"{email} is another account's sign-in address."
    return None


class AddressTaken(Exception):
    """The owner's address became another account's after the caller checked it; nothing of
    the account has changed. str() says so in words."""


def _move_to(user: User, new_email: str) -> None:
    """Give the account the owner's address, checked again here under its row lock; raises
    AddressTaken when another account has it, or takes it at this moment (the unique index
    stops one of two requests for one address: here, in a savepoint, not at the commit)."""
    problem = owner_address_problem(user, new_email)
    if problem is None:
        try:
            with db.session.begin_nested():
                user.email = new_email
        except IntegrityError:
            problem = f"{new_email} is another account's sign-in address."
    if problem is not None:
        raise AddressTaken(f"{problem} Nothing has changed.")


def moved_since_shown(user: User, shown_email: Optional[str]) -> Optional[str]:
    """What to tell staff when the account no longer signs in with the address their page was
    shown for (someone moved it meanwhile), or None. Empty `shown_email` (a form made by
    hand, or the command line) claims nothing."""
    if not shown_email or shown_email == user.email:
        return None
    return (f"While this page was open, the account's sign-in address changed from "
            f"{shown_email} to {user.email}. Nothing has been done. Check with the client "
            "which address is theirs, then confirm again.")


def recover(user: User, new_email: Optional[str] = None, actor: Optional[User] = None, *,
            by: str = "cli") -> Recovered:
    """Give an account back to its owner after someone else got into it: the sign-in address
    becomes `new_email` (the owner's, checked by the caller) when given, and everything the
    intruder could have set up to come back ends: sessions, sign-ins waiting for a code,
    links, trusted devices, passkeys, the authenticator app and the mobile number (codes go
    by email). A link to choose a new password goes to the address, since the intruder knows
    the old one; an account switched off meanwhile is switched on again, since from now on
    only the mailbox's owner can finish a sign-in. The caller commits.

    Only staff can do this, having checked who they are talking to (SECURITY.md section 4):
    the owner can no longer prove anything the intruder changed."""
    hold_account(user)
    db.session.refresh(user)  # as it is now, under the lock
    old_email = user.email
    if new_email is not None and new_email != old_email:
        _move_to(user, new_email)
    actor_id = actor.id if actor else None
    ended = sessions.revoke_all_for(user.id)  # and the trusted devices
    end_pending_sign_ins(user, by="recovered", actor_id=actor_id)
    tokens.revoke(user)
    removed = passkeys.remove_all(user.id, "account recovered")
    app_removed = totp.remove(user)
    phone_removed = user.phone is not None
    user.phone, user.phone_verified_at, user.channel = None, None, "email"
    phone_proofs.cancel_proof(user)
    moved = user.email != old_email
    audit.record("account_recovered", user_id=user.id, actor_id=actor_id, detail={
        "by": by, "email_changed": moved,
        # Masked, as an address change records them (support.last_address_change reads both).
        **({"from": mask_destination("email", old_email),
            "to": mask_destination("email", user.email)} if moved else {}),
        "sessions_ended": ended, "passkeys_removed": len(removed), "app_removed": app_removed,
        "phone_removed": phone_removed})
    if moved:
        # As for any change of the sign-in address, the address left is told (no link in
        # it): if a caller fooled staff into moving the account, its owner hears of it.
        messages.queue_notice(user, "email_changed", destination=old_email, values={
            "new_email": mask_destination("email", user.email), "kept_here": False})
    # One email says all of it: the account back, switched on, and a new password to choose.
    switched_on = reactivate(user, actor, by=by, notify=False)
    if user.has_password:
        send_reset(user, actor, given_back=True, switched_on=switched_on)
    return Recovered(old_email, ended, len(removed), app_removed, phone_removed, switched_on)
