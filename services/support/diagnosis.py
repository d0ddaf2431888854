"""Why a sign-in went wrong, in plain words, for the support console.

Each rule looks at one sign-in's facts (its row, its messages, its audit events and the
sign-ins around it, all loaded beforehand by services.support) and says what a support
person should know, naming times and minutes. No database access here, so every rule can be
tested with the rows of a real sign-in or with plain objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable, Optional

from services import clock
from services.delivery import REFUSED_ADDRESS, mailbox_full, policy_refusal
from services.signin.codes import CODE_LIFETIME, MAX_WRONG_CODES
from services.masking import mask_destination
from services.phones import uk_mobile

# How serious a finding is, most serious first.
PROBLEM, WARNING, INFO, OK = "problem", "warning", "info", "ok"
_RANK = {PROBLEM: 0, WARNING: 1, INFO: 2, OK: 3}

# What a finding is about; tests and templates refer to these.
LATE = "late"
EARLIER_CODE = "earlier_code"
RAPID_SIGN_INS = "rapid_sign_ins"
SMS_UNREACHABLE = "sms_unreachable"
DELIVERY_FAILED = "delivery_failed"
TOO_MANY_TRIES = "too_many_tries"
ACCOUNT_LOCKED = "account_locked"
EXPIRED = "expired"
WRONG_CODES = "wrong_codes"
SIGNED_IN = "signed_in"
WAITING = "waiting"
ENDED_BY_STAFF = "ended_by_staff"
ENDED = "ended"  # by the client's own step or a change to the account, not by staff
# OpenID Connect (services/federation/oidc.py): an app the rules keep out, a wrong address.
APP_NOT_ALLOWED = "app_not_allowed"
APP_REDIRECT_MISMATCH = "app_redirect_mismatch"

# The dispatcher hands a message over within seconds; two minutes means something held it up.
LATE_SENDING = timedelta(minutes=2)
# A text normally reaches the phone within seconds of Vonage taking it.
LATE_ARRIVAL = timedelta(minutes=2)
# People type a code within a minute or two of it arriving; five minutes suggests it arrived late.
SLOW_ENTRY = timedelta(minutes=5)
# Sign-ins that replace each other within this time are one burst (Back, Log in again, new tab).
SHORT_TIME = timedelta(minutes=10)

CODE_MESSAGE_KINDS = ("code", "resend")


@dataclass(frozen=True)
class Finding:
    """One thing support should know about a sign-in."""

    kind: str
    severity: str
    text: str


@dataclass
class SignInFacts:
    """One sign-in and everything that happened to it, loaded by services.support."""

    sign_in: Any  # a SignIn (or anything with its attributes)
    deliveries: list = field(default_factory=list)  # its Delivery rows, oldest first
    events: list = field(default_factory=list)  # its Event rows, oldest first
    successor: Any = None  # the sign-in that replaced this one, if any
    burst: list = field(default_factory=list)  # sign-ins that replaced each other, oldest first
    earlier: dict = field(default_factory=dict)  # sign-in id -> earlier sign-in whose code was typed
    actors: dict = field(default_factory=dict)  # user id -> staff email, for staff actions
    app: Optional[str] = None  # the app (OpenID Connect client) that sent the client to sign in


class _Words:
    """Times and durations as people say them, in the portal's time zone."""

    def __init__(self, tz: str, day_of: datetime) -> None:
        self.tz = tz
        self.day = clock.local(day_of, tz).date()

    def at(self, moment: Optional[datetime]) -> str:
        """"10:05", or "10:05 on 28 Nov" when it is not the sign-in's day."""
        if moment is None:
            return "an unknown time"
        return clock.hhmm_on(moment, self.day, self.tz)


def minutes(delta: timedelta) -> str:
    """"7 minutes", "1 minute", "under a minute"."""
    whole = int(delta.total_seconds() // 60)
    if whole < 1:
        return "under a minute"
    if whole >= 120:
        hours = whole // 60
        return f"{hours} hours"
    return f"{whole} minute{'s' if whole != 1 else ''}"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _code_entries(facts: SignInFacts) -> list:
    return [e for e in facts.events if e.type == "code_entry"]


def _code_messages(facts: SignInFacts) -> list:
    return [d for d in facts.deliveries if d.kind in CODE_MESSAGE_KINDS]


def _where(item) -> str:
    """"the email to j•••@example.com" or "the text to •••• ••• 456"."""
    noun = "text" if item.channel == "sms" else "email"
    return f"the {noun} to {mask_destination(item.channel, item.destination)}"


def _handler(channel: str) -> str:
    return "the text message service" if channel == "sms" else "the mail server"


# Sign-ins ended (status "cancelled") by something other than a staff action, by the `by`
# of their `signin_cancelled` event (services.signin.codes.end_pending_sign_ins), and why.
ENDED_BECAUSE = {
    "client": "The client chose “sign out everywhere else”.",
    "password": "The password changed, which ends every sign-in waiting for a code.",
    "email": "The sign-in email address changed, which ends every sign-in waiting for a code.",
    "deactivated": "The account was deactivated.",
    "passkey": "The client signed in with a passkey instead, which ends every sign-in "
               "waiting for a code.",
    "device": "The client signed in on a browser trusted to skip the code, which ends every "
              "sign-in waiting for a code.",
    "totp_removed": "The client stopped using the authenticator app, which ends a sign-in "
                    "waiting for one of its codes.",
    "recovered": "The account was given back to its owner, which ends every sign-in waiting "
                 "for a code.",
    "secret_key": "The server's SECRET_KEY was changed after its code was made, so the code "
                  "could no longer be checked; it was ended when the client signed in again.",
}


def _cancellation(facts: SignInFacts):
    return next((e for e in facts.events if e.type == "signin_cancelled"), None)


def ended_because(facts: SignInFacts) -> Optional[str]:
    """Why a cancelled sign-in ended when staff did not end it, in words; None otherwise."""
    event = _cancellation(facts)
    detail = event.detail if event is not None and isinstance(event.detail, dict) else {}
    return ENDED_BECAUSE.get(detail.get("by"))


def ended_by_staff(facts: SignInFacts) -> Optional[str]:
    """Who of the staff ended a cancelled sign-in from the console ("staff" when their
    account is gone), or None when no one did."""
    event = _cancellation(facts)
    if event is None or ended_because(facts) is not None:
        return None
    if event.actor_id or (isinstance(event.detail, dict) and event.detail.get("by") == "support"):
        return facts.actors.get(event.actor_id) or "staff"
    return None


# --- the rules ----------------------------------------------------------------------------

def _late(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    found = []
    for item in _code_messages(facts):
        if item.sent_at and item.sent_at - item.created_at >= LATE_SENDING:
            tries = ""
            if item.attempts > 1:
                why = f" ({item.last_error})" if item.last_error else ""
                tries = f" after {item.attempts} tries{why}"
            found.append(Finding(LATE, WARNING,
                f"The code arrived late: it took {minutes(item.sent_at - item.created_at)} to "
                f"leave us (queued at {words.at(item.created_at)}, handed to "
                f"{_handler(item.channel)} at {words.at(item.sent_at)}{tries})."))
        if item.sent_at and item.delivered_at and item.delivered_at - item.sent_at >= LATE_ARRIVAL:
            found.append(Finding(LATE, WARNING,
                f"The code arrived late: the phone network took "
                f"{minutes(item.delivered_at - item.sent_at)} to deliver the text (handed over at "
                f"{words.at(item.sent_at)}, reached the phone at {words.at(item.delivered_at)})."))
        if (facts.sign_in.status == "pending" and item.status in ("queued", "sending")
                and not item.last_error and now - item.created_at >= LATE_SENDING):
            found.append(Finding(LATE, WARNING,
                f"The code has been waiting to be sent for {minutes(now - item.created_at)} "
                f"(queued at {words.at(item.created_at)})."))
    sent = [d.sent_at for d in _code_messages(facts) if d.sent_at]
    entries = _code_entries(facts)
    if sent and entries:
        first_sent, first_entry = min(sent), entries[0].created_at
        if first_entry - first_sent >= SLOW_ENTRY:
            found.append(Finding(LATE, WARNING,
                f"The first code was typed {minutes(first_entry - first_sent)} after the message "
                f"was handed over (sent at {words.at(first_sent)}, typed at "
                f"{words.at(first_entry)}): the message probably arrived late, or went to a "
                f"junk or spam folder."))
    return found


def _earlier_code(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    found = []
    this_time = words.at(facts.sign_in.created_at)
    for entry in _code_entries(facts):
        earlier_id = (entry.detail or {}).get("earlier_sign_in")
        if earlier_id:
            earlier = facts.earlier.get(earlier_id)
            then = (f"their earlier sign-in at {words.at(earlier.created_at)}" if earlier
                    else "an earlier sign-in")
            found.append(Finding(EARLIER_CODE, PROBLEM,
                f"At {words.at(entry.created_at)} the client typed the code from {then}, not "
                f"the code sent at {this_time} for this sign-in. A new sign-in stops the "
                f"earlier codes, so only the newest message works."))
        elif entry.outcome == "superseded":
            newer = facts.successor
            newer_time = words.at(newer.created_at) if newer else words.at(facts.sign_in.ended_at)
            found.append(Finding(EARLIER_CODE, PROBLEM,
                f"At {words.at(entry.created_at)} the client typed a code for this sign-in from "
                f"{this_time}, but the sign-in at {newer_time} had already replaced it; only "
                f"the code sent at {newer_time} could work."))
    return found


def _same_browser(one, other) -> bool:
    return bool(one.user_agent) and one.user_agent == other.user_agent and one.ip == other.ip


def _rapid(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    burst = facts.burst
    if len(burst) < 2:
        return []
    first, last = burst[0], burst[-1]
    times = ", ".join(words.at(s.created_at) for s in burst)
    text = (f"{len(burst)} sign-ins within {minutes(last.created_at - first.created_at)} "
            f"({times}). Each new sign-in made a new code and stopped the one before; this "
            f"happens when the client presses Back, clicks Log in again, or opens a new tab.")
    this = facts.sign_in
    if this.id != last.id and facts.successor is not None:
        newer = facts.successor
        source = ("from the same browser" if _same_browser(this, newer)
                  else "from a different browser or device")
        text += (f" This one was replaced at {words.at(newer.created_at)} by a sign-in {source}, "
                 f"so its code (sent at {words.at(this.created_at)}) stopped working then.")
    elif this.id == last.id:
        # Not "sent at" a code that has not left us (the mail server down, say).
        made = "sent" if any(d.sent_at for d in _code_messages(facts)) else "made"
        text += f" Only this last one's code, {made} at {words.at(this.created_at)}, could work."
    return [Finding(RAPID_SIGN_INS, WARNING, text)]


def _sms_unreachable(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    texts = [d for d in facts.deliveries if d.channel == "sms"]
    sign_in = facts.sign_in
    found = []
    number = sign_in.destination if sign_in.channel == "sms" else (
        texts[0].destination if texts else None)
    if number and uk_mobile(number) != number:
        found.append(Finding(SMS_UNREACHABLE, PROBLEM,
            f"The code was sent by text to {mask_destination('sms', number)}, which is not a UK "
            f"mobile number. Texts reach UK mobiles only, so it could not arrive. Switch the "
            f"client to email."))
    for item in texts:
        if item.status == "failed" and item.sent_at:
            reason = f": {item.last_error}" if item.last_error else ""
            found.append(Finding(SMS_UNREACHABLE, PROBLEM,
                f"The text was handed to the phone network at {words.at(item.sent_at)}, but "
                f"{mask_destination('sms', item.destination)} could not receive it"
                f"{' (at ' + words.at(item.failed_at) + ')' if item.failed_at else ''}{reason}. "
                f"The phone may be off or without signal, or the number may not take texts. "
                f"Switch the client to email."))
    return found


def _last_reason(facts: SignInFacts, item) -> Optional[str]:
    """Why the newest failed attempt at this message failed, from its retry events."""
    reasons = [(e.detail or {}).get("reason") for e in facts.events
               if e.delivery_id == item.id and e.type in ("delivery_retry", "delivery_failed")]
    reasons = [r for r in reasons if r]
    return reasons[-1] if reasons else None


# A program's name for an error ("(ConnectionRefusedError)", "(OSError)"), which delivery
# adds after its words for the operator's log.
_PROGRAM_WORDS = re.compile(r" \((?:[A-Z]\w*(?:Error|Exception)|OSError)\)")


# How services.delivery words a refusal for good (5xx: "no such user"); a 4xx refusal is
# "refused the address (4..)", and a full mailbox (retried) is delivery.mailbox_full.
_NO_SUCH_ADDRESS = re.compile(re.escape(REFUSED_ADDRESS) + r" \(5")
_FULL_ENDED = (" The client's mailbox is full, so it could not take the message: ask them to "
               "delete some emails to make room and sign in again for a new code, or offer to "
               "change their email address, or to send their codes by text.")
# A mail server's security or spam rules turned our email away (delivery.policy_refusal, final):
# the firm's mail settings, not the client's address, so nothing the client can change.
_POLICY_ADVICE = (" This is on our side, not the client's: their email address is probably "
                  "right, so do not ask them to change it or to check its spelling. Tell the "
                  "firm's administrator: our mail settings need checking (SPF, DKIM and DMARC "
                  "for our domain, or our mail provider's relay). Meanwhile offer to send the "
                  "client's codes by text.")


def _delivery_failed(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    found = []
    for item in facts.deliveries:
        # "could not be reached (ConnectionRefusedError)": the class name is for the
        # operator's log; support needs to know whose side the fault is on.
        error = _PROGRAM_WORDS.sub("", item.last_error or "")
        # Ending the sign-in overwrites last_error; the retry events keep the real reason.
        reason = _PROGRAM_WORDS.sub("", _last_reason(facts, item) or "")
        advice = ""
        if item.channel == "sms":
            advice = " Offer to switch the client to email."
        elif mailbox_full(error) or mailbox_full(reason):
            advice = _FULL_ENDED
        elif policy_refusal(error) or policy_refusal(reason):
            advice = _POLICY_ADVICE
        elif _NO_SUCH_ADDRESS.search(error):
            advice = (" Check the email address is right: the client's mail server says that "
                      "address does not take mail. Go through its spelling with the client; if "
                      "it is wrong, change it for them.")
        elif "refused" in error:
            advice = " Check the email address is right and the mailbox is not full."
        if "could not be reached" in error or "could not be reached" in reason:
            advice += (f" This was a fault on our side, not the client's: tell whoever runs the "
                       f"server, and once {_handler(item.channel)} answers again the client "
                       f"should sign in again for a new code.")
        if item.status == "failed" and not (item.channel == "sms" and item.sent_at):
            found.append(Finding(DELIVERY_FAILED, PROBLEM,
                f"Delivery failed: {_where(item)} could not be sent: "
                f"{error or 'no reason was given'}. We gave up at "
                f"{words.at(item.failed_at)} after {_plural(item.attempts, 'try')}.{advice}"))
        elif item.status == "cancelled" and item.attempts and not item.sent_at:
            if reason:
                found.append(Finding(DELIVERY_FAILED, PROBLEM,
                    f"Delivery failed: {_where(item)} could not be sent ({reason}); tried "
                    f"{_plural(item.attempts, 'time')} before the sign-in ended at "
                    f"{words.at(facts.sign_in.ended_at)}.{advice}"))
        elif item.status in ("queued", "sending") and item.attempts and item.last_error:
            ours = (f" This is a fault on our side, not the client's: tell them the code will "
                    f"come once {_handler(item.channel)} answers again, and tell whoever runs "
                    f"the server." if "could not be reached" in error else "")
            if mailbox_full(error):
                until = getattr(item, "give_up_at", None)
                until = (f"; we keep trying while it works (until {words.at(until)})"
                         if until else "")
                ours = (f" Tell the client their mailbox is full: once they delete some emails "
                        f"to make room, the code comes with our next try{until}. Or offer to "
                        f"change their email address, or to send their codes by text.")
            found.append(Finding(DELIVERY_FAILED, WARNING,
                f"Sending {_where(item)} keeps failing: {error}. Tried "
                f"{_plural(item.attempts, 'time')} since {words.at(item.created_at)} "
                f"({minutes(now - item.created_at)}); still trying.{ours}"))
    return found


def _too_many_tries(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    sign_in = facts.sign_in
    entries = _code_entries(facts)
    wrong = [e for e in entries if e.outcome == "wrong"]
    stopped = [e for e in entries if e.outcome == "locked"]
    lock = next((e for e in facts.events if e.type == "signin_locked"), None)
    if lock is not None:
        # Ended by an account-wide lock, not by this sign-in's own wrong codes.
        return [Finding(ACCOUNT_LOCKED, PROBLEM,
            f"The account was locked at {words.at(lock.created_at)} after too many wrong "
            f"passwords or codes, which ended this sign-in. Check the account's lock above.")]
    if sign_in.status == "locked" or sign_in.failed_attempts >= MAX_WRONG_CODES:
        count = max(sign_in.failed_attempts, len(wrong))
        span = ""
        if wrong:
            last = stopped[0].created_at if stopped else wrong[-1].created_at
            first, final = words.at(wrong[0].created_at), words.at(last)
            # Typed within one minute, they read as one moment, not "between 03:04 and 03:04".
            span = f" at {first}" if first == final else f" between {first} and {final}"
        return [Finding(TOO_MANY_TRIES, PROBLEM,
            f"Too many wrong tries: {_plural(count, 'wrong code')} typed{span}, so this sign-in "
            f"was stopped at {words.at(sign_in.ended_at)}. The client must sign in again to get "
            f"a new code, and use the newest message.")]
    if wrong:
        return [Finding(WRONG_CODES, INFO,
            f"{_plural(len(wrong), 'wrong code')} typed (from {words.at(wrong[0].created_at)}); "
            f"a sign-in stops after {MAX_WRONG_CODES}.")]
    return []


def _expired(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    sign_in = facts.sign_in
    if sign_in.status != "expired":
        return []
    text = (f"The code expired: the one sent at {words.at(sign_in.created_at)} ran out at "
            f"{words.at(sign_in.expires_at)} without being used.")
    too_late = [e for e in _code_entries(facts) if e.outcome == "expired"]
    if too_late:
        text += (f" The client typed a code at {words.at(too_late[0].created_at)}, "
                 f"{minutes(too_late[0].created_at - sign_in.expires_at)} after that.")
    elif not _code_entries(facts) and sign_in.channel == "totp":
        text += (" No code from the authenticator app was typed (nothing is sent for those): "
                 "the client may not have had their phone, or may not have found the app.")
    elif not _code_entries(facts):
        handed = any(d.sent_at for d in _code_messages(facts))
        text += " No code was typed at all" + (
            ": the message may not have arrived, or may be in a junk or spam folder."
            if handed else ", and the message was never handed over.")
    if sign_in.channel != "totp":
        text += (f" A code works for {minutes(CODE_LIFETIME)}: ask the client to sign in again "
                 "and type the new code as soon as it arrives.")
    return [Finding(EXPIRED, PROBLEM, text)]


def _outcome(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    sign_in = facts.sign_in
    if sign_in.status == "completed" and sign_in.channel == "passkey":
        return [Finding(SIGNED_IN, OK, f"Signed in at {words.at(sign_in.ended_at)} with the "
                        f"passkey “{sign_in.destination}”: no password or code needed.")]
    if sign_in.status == "completed" and sign_in.channel == "device":
        return [Finding(SIGNED_IN, OK, f"Signed in at {words.at(sign_in.ended_at)} with the "
                        "password on a trusted device: no code needed.")]
    if sign_in.status == "completed":
        sent = [d.sent_at for d in _code_messages(facts) if d.sent_at]
        after = (f", {minutes(sign_in.ended_at - min(sent))} after the code was sent"
                 if sent and sign_in.ended_at else "")
        return [Finding(SIGNED_IN, OK, f"Signed in at {words.at(sign_in.ended_at)}{after}.")]
    if sign_in.status == "pending" and sign_in.channel == "totp":
        # Nothing is sent for these: "I never got my code" means the app is not at hand.
        return [Finding(WAITING, INFO,
            f"Still waiting for a code from the client's authenticator app (started at "
            f"{words.at(sign_in.created_at)}, open until {words.at(sign_in.expires_at)}). "
            f"Nothing is sent by email or text for these: ask the client to open the app on "
            f"their phone and type the code it shows now. If they no longer have the app, "
            f"switch them to codes by email.")]
    if sign_in.status == "pending":
        text = (f"Still waiting for the code: made at {words.at(sign_in.created_at)}, it works "
                f"until {words.at(sign_in.expires_at)}.")
        handed = [d for d in _code_messages(facts) if d.sent_at and d.status != "failed"]
        if handed:
            item = handed[-1]
            to = mask_destination(item.channel, item.destination)
            if item.channel == "sms" and item.delivered_at:
                text += (f" The phone network reported the text reached {to} at "
                         f"{words.at(item.delivered_at)}: ask the client to look in the "
                         f"messages on that phone, and check the number is theirs.")
            elif item.channel == "sms":
                text += (f" The text was handed to the phone network at "
                         f"{words.at(item.sent_at)}, to {to}. If it has not arrived, "
                         f"check the number with the client; a phone that is off or "
                         f"without signal gets it later.")
            else:
                text += (f" The email was handed to the mail server at "
                         f"{words.at(item.sent_at)}, to {to}. If the client cannot "
                         f"find it, ask them to look in their junk or spam folder, and "
                         f"read them the address at the top of this page: if it is not the "
                         f"inbox they are looking in, or is mistyped, the code went there.")
        return [Finding(WAITING, INFO, text)]
    if sign_in.status == "cancelled":
        why, staff = ended_because(facts), ended_by_staff(facts)
        if why is not None:
            event = _cancellation(facts)
            by = f" By {facts.actors[event.actor_id]}." if event.actor_id in facts.actors else ""
            return [Finding(ENDED, INFO, f"Ended at {words.at(sign_in.ended_at)}. {why}{by}")]
        if staff:
            return [Finding(ENDED_BY_STAFF, INFO,
                f"Ended by {staff} at {words.at(sign_in.ended_at)}.")]
        return [Finding(ENDED, INFO, f"Ended at {words.at(sign_in.ended_at)}, before its code "
                                     "was used.")]
    return []


def _apps(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    """An app (OpenID Connect) the access rules kept out, or one asking for a wrong address."""
    found = []
    for event in facts.events:
        detail = event.detail if isinstance(event.detail, dict) else {}
        app = detail.get("client") or "An app"
        if event.type == "oidc_denied":
            found.append(Finding(APP_NOT_ALLOWED, PROBLEM,
                f"Signed in, but at {words.at(event.created_at)} the access rules kept them out "
                f"of {app}: {detail.get('reason', '')} If they should have it, change "
                "ACCESS_RULES (operator's guide, OpenID Connect)."))
        elif event.type == "oidc_bad_request" and event.outcome == "redirect_mismatch":
            registered = ", ".join(detail.get("registered") or []) or "none"
            found.append(Finding(APP_REDIRECT_MISMATCH, PROBLEM,
                f"At {words.at(event.created_at)} {app} asked to send the client back to "
                f"{detail.get('redirect_uri', 'an address')}, which it has not registered "
                f"(registered: {registered}), so ClientGate stopped. The app's settings or its "
                "registration need fixing, not the client."))
    return found


APP_CLOCK = "app_clock"


def _app_clock(facts: SignInFacts, words: _Words, now: datetime) -> list[Finding]:
    """Authenticator app codes from another time step: the phone's clock is off."""
    off = [e for e in _code_entries(facts)
           if isinstance(e.detail, dict) and isinstance(e.detail.get("steps_off"), int)
           and e.detail["steps_off"]]
    if not off:
        return []
    from services.authenticators.totp import drift_words

    steps = off[-1].detail["steps_off"]
    return [Finding(APP_CLOCK, WARNING,
        f"{_plural(len(off), 'code')} typed from the authenticator app matched the app's codes "
        f"for another time: the phone's clock looks {drift_words(steps)}. Ask the client to "
        "turn on automatic date and time in the phone's settings, or to use a code by email.")]


RULES: tuple[Callable[[SignInFacts, _Words, datetime], list[Finding]], ...] = (
    _sms_unreachable, _delivery_failed, _earlier_code, _too_many_tries, _expired, _late,
    _rapid, _apps, _app_clock, _outcome,
)


def diagnose(facts: SignInFacts, tz: str, now: Optional[datetime] = None) -> list[Finding]:
    """Every finding about this sign-in, most serious first."""
    now = now or clock.now()
    words = _Words(tz, facts.sign_in.created_at)
    found: list[Finding] = []
    for rule in RULES:
        found.extend(rule(facts, words, now))
    return sorted(found, key=lambda f: _RANK[f.severity])


def headline(findings: list[Finding]) -> Optional[Finding]:
    """The most serious finding, for one-line lists."""
    return findings[0] if findings else None


def went_wrong(findings: list[Finding]) -> bool:
    """Whether any finding is a problem or a warning."""
    return any(f.severity in (PROBLEM, WARNING) for f in findings)


# --- the account's links: invitations and password resets (services.accounts) ----------

INVITATION_EXPIRED = "invitation_expired"
INVITATION_USED = "invitation_used"
INVITATION_UNOPENED = "invitation_unopened"
RESET_EXPIRED = "reset_expired"
RESET_USED = "reset_used"
LINK_REPLACED = "link_replaced"

_LINK_NAMES = {"invitation": "invitation link", "reset": "link to set a new password",
               "email": "link to confirm a new email address"}
_LIFETIMES = {"invitation": "7 days", "reset": "one hour", "email": "one hour"}


def _when(moment: Optional[datetime], tz: str) -> str:
    if moment is None:
        return "an unknown time"
    return clock.local(moment, tz).strftime("%H:%M on %-d %b")


def _iso(value) -> Optional[datetime]:
    try:
        return clock.as_utc(datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def account_findings(refused_links: list, latest_invitation: Any, has_password: bool,
                     tz: str, now: Optional[datetime] = None) -> list[Finding]:
    """Why an account's invitation or reset links did not work, newest first.

    `refused_links` are the account's recent `link_refused` events; `latest_invitation` its
    newest invitation link row (or None), to tell an invitation that ran out unopened.
    """
    now = now or clock.now()
    found: list[Finding] = []
    for event in refused_links:
        detail = event.detail if isinstance(event.detail, dict) else {}
        purpose = detail.get("purpose", "")
        name = _LINK_NAMES.get(purpose, "link")
        opened = _when(event.created_at, tz)
        if event.outcome == "expired":
            kind = {"invitation": INVITATION_EXPIRED, "reset": RESET_EXPIRED}.get(
                purpose, LINK_REPLACED)
            next_step = ("Send the invitation again." if purpose == "invitation"
                         else "Send a new link, or ask them to use “Forgotten your password?”.")
            found.append(Finding(kind, PROBLEM, (
                f"At {opened} they opened a {name} that had run out at "
                f"{_when(_iso(detail.get('expired_at')), tz)} (these links work for "
                f"{_LIFETIMES.get(purpose, 'a short time')}). {next_step}")))
        elif event.outcome == "used":
            kind = {"invitation": INVITATION_USED, "reset": RESET_USED}.get(
                purpose, LINK_REPLACED)
            next_step = ("They already have a password: they should sign in, or use "
                         "“Forgotten your password?” if they have forgotten it."
                         if purpose == "invitation" else
                         "Each link works once; send a new one if they still need it.")
            found.append(Finding(kind, WARNING, (
                f"At {opened} they opened a {name} that had already been used at "
                f"{_when(_iso(detail.get('used_at')), tz)}. {next_step}")))
        else:
            found.append(Finding(LINK_REPLACED, WARNING, (
                f"At {opened} they opened a {name} that no longer works: a newer link "
                "replaced it, it was withdrawn, or the account changed since it was sent. "
                "Ask them to use the newest email.")))
    if (latest_invitation is not None and not has_password
            and latest_invitation.revoked_at is None and latest_invitation.expires_at <= now
            and not any(f.kind == INVITATION_EXPIRED for f in found)):
        found.append(Finding(INVITATION_UNOPENED, PROBLEM, (
            f"The invitation sent at {_when(latest_invitation.created_at, tz)} ran out at "
            f"{_when(latest_invitation.expires_at, tz)} without being used. Send it again.")))
    return found
