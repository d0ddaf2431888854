"""One sign-in told as a list of steps, and the browser it came from, in words.

Pure functions over the facts services.support loads; the support page and its CSV export
both read them. Steps never carry a code: events and messages hold none to begin with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Optional

from services import clock
from services.signin.codes import MAX_RESENDS, MAX_WRONG_CODES
from services.support.diagnosis import ENDED_BECAUSE, SignInFacts, ended_because, ended_by_staff
from services.masking import mask_destination

OK, WARN, BAD, PLAIN = "ok", "warn", "bad", "plain"

@dataclass(frozen=True)
class Step:
    """One thing that happened during a sign-in, at a time."""

    at: datetime
    what: str
    detail: str = ""
    tone: str = PLAIN


@lru_cache(maxsize=2048)
def device_words(user_agent: Optional[str]) -> str:
    """"Chrome Mobile 120 on Android 14, phone" from a User-Agent header.

    ua-parser (2 MB with its rules) loads with the first support page that needs it, not in
    every worker (bench/memory.py)."""
    import user_agents

    if not user_agent:
        return "Unknown browser"
    parsed = user_agents.parse(user_agent)
    browser = parsed.browser.family
    if browser == "Other":
        browser = "Unknown browser"
    elif parsed.browser.version:
        browser += f" {parsed.browser.version[0]}"
    system = parsed.os.family
    if system != "Other" and parsed.os.version_string:
        system += f" {parsed.os.version_string}"
    if parsed.is_bot:
        kind = "automated client"
    elif parsed.is_tablet:
        kind = "tablet"
    elif parsed.is_mobile:
        kind = "phone"
    elif parsed.is_pc:
        kind = "computer"
    else:
        kind = "unknown device"
    return f"{browser} on {system}, {kind}" if system != "Other" else f"{browser}, {kind}"


def _hhmm(moment: Optional[datetime], tz: str) -> str:
    return clock.hhmm(moment, tz) if moment else "?"


def _on_day(moment: datetime, day_of: datetime, tz: str) -> str:
    """"10:05", or "10:05 on 5 Dec" when that is not the day of `day_of`."""
    return clock.hhmm_on(moment, clock.local(day_of, tz).date(), tz)


def _parse_time(value) -> Optional[datetime]:
    try:
        return clock.as_utc(datetime.fromisoformat(value)) if isinstance(value, str) else None
    except ValueError:
        return None


def _handler(channel: str) -> str:
    return "the text message service" if channel == "sms" else "the mail server"


def _channel_words(channel: str, destination: Optional[str]) -> str:
    noun = "text" if channel == "sms" else "email"
    return f"{noun} to {mask_destination(channel, destination)}" if destination else noun


def _tries(count: int) -> str:
    return f" after {count} tries" if count and count > 1 else ""


# A network failure's program name at the end of a message's reason ("the mail server could
# not be reached (ConnectionRefusedError)", as services.delivery records it for the log and
# the operator), in words support can read out or pass on. A name not listed stays as it is.
_FAILURE_WORDS = {
    "ConnectionRefusedError": "it refused the connection",
    "TimeoutError": "it did not answer in time",
    "timeout": "it did not answer in time",
    "gaierror": "its name was not found",
    "ConnectionResetError": "the connection was cut",
    "ConnectionAbortedError": "the connection was cut",
    "BrokenPipeError": "the connection was cut",
    "SMTPServerDisconnected": "it closed the connection",
    "SMTPConnectError": "it would not start a conversation",
    "SSLError": "a secure connection could not be made",
    "SSLEOFError": "a secure connection could not be made",
    "OSError": "a network error",
}
_PROGRAM_NAME = re.compile(r" \(([A-Za-z_]+)\)$")


def reason_words(reason: str) -> str:
    """A message's reason with the program's name of a network failure said in words."""
    found = _PROGRAM_NAME.search(reason)
    if found is None or found.group(1) not in _FAILURE_WORDS:
        return reason
    return f"{reason[:found.start()]}: {_FAILURE_WORDS[found.group(1)]}"


def _sentence(text: str) -> str:
    """Reasons are written to follow a colon; a table cell starts them with a capital."""
    return text[:1].upper() + text[1:] if text else text


def _humanise(event_type: str) -> str:
    return event_type.replace("_", " ").capitalize()


class _Teller:
    """Turns a sign-in's events into steps, remembering what it has seen so far."""

    def __init__(self, facts: SignInFacts, tz: str) -> None:
        self.facts = facts
        self.tz = tz
        self.deliveries = {d.id: d for d in facts.deliveries}
        self.wrong = 0

    def step(self, event) -> Step:
        detail = event.detail or {}
        item = self.deliveries.get(event.delivery_id)
        describe = getattr(self, f"_{event.type}", None)
        if describe is not None:
            what, words, tone = describe(event, detail, item)
        else:
            what, words, tone = self._other(event, detail, item)
        at = None
        if event.type == "delivery_receipt":
            # A receipt says when the phone network acted, which may be before it reached us.
            at = _parse_time(detail.get("at"))
        elif event.type == "signin_expired":
            # The sweep may notice late; the code ran out at its expiry time all the same.
            at = self.facts.sign_in.expires_at
        return Step(at or event.created_at, what, _sentence(words), tone)

    def _signin_started(self, event, detail, item):
        if detail.get("channel") == "totp":
            return ("Password accepted", "Nothing sent: the client's authenticator app shows "
                                         "the code.", PLAIN)
        return ("Password accepted", "A new code was made for this sign-in.", PLAIN)

    def _choice_answered(self, event, detail, item):
        words = {"keep": "chose to keep using this code", "new": "asked for a new code"}
        return ("Asked: keep this code or a new one?",
                f"After typing the password in another window, the client "
                f"{words.get(detail.get('action'), 'answered')}.", PLAIN)

    # --- fewer codes: passkeys, authenticator apps, trusted devices ---

    def _passkey_used(self, event, detail, item):
        return ("Signed in with a passkey",
                f"The passkey “{detail.get('name', '?')}”, unlocked on the client's device by "
                "fingerprint, face or screen lock (a multi-factor authenticator). No password "
                "or code was needed.", OK)

    def _trusted_device_used(self, event, detail, item):
        since = _parse_time(detail.get("trusted_since"))
        when = f" on {clock.local(since, self.tz).strftime('%-d %b')}" if since else ""
        return ("Code skipped: trusted device",
                f"Password accepted on a browser the client marked “don't ask for a code”"
                f"{when}.", OK)

    def _device_trusted(self, event, detail, item):
        return ("Device marked as trusted",
                "The client ticked “Don't ask for a code on this device for 30 days”.", PLAIN)

    def _signin_kept(self, event, detail, item):
        return ("Password typed again elsewhere",
                "The client chose to keep using the code already sent.", PLAIN)

    def _delivery_queued(self, event, detail, item):
        channel = item.channel if item else detail.get("channel", "")
        where = _channel_words(channel, item.destination if item else None)
        if detail.get("kind") == "resend" or (item and item.kind == "resend"):
            return ("Resend queued", f"The same code, by {where}.", PLAIN)
        return ("Code queued", f"By {where}.", PLAIN)

    def _delivery_sent(self, event, detail, item):
        channel = item.channel if item else detail.get("channel", "email")
        if detail.get("transport") == "outbox":
            return ("Not really sent",
                    f"No {'Vonage key' if channel == 'sms' else 'mail server'} is set, so the "
                    f"message went to the server's console instead of the client.", BAD)
        return ("Handed over", f"To {_handler(channel)}{_tries(detail.get('attempts', 0))}.", OK)

    def _delivery_retry(self, event, detail, item):
        again = _parse_time(detail.get("next_attempt_at"))
        when = f"; trying again at {_hhmm(again, self.tz)}" if again else ""
        return ("Sending failed for a moment",
                f"{reason_words(detail.get('reason', 'no reason given'))}{when}.",
                WARN)

    def _delivery_failed(self, event, detail, item):
        return ("Delivery failed",
                f"{reason_words(detail.get('reason', 'no reason given'))}"
                f"{_tries(detail.get('attempts', 0))}.",
                BAD)

    def _delivery_receipt(self, event, detail, item):
        outcome = (event.outcome or "").lower()
        if outcome == "delivered":
            return ("Delivered", "The phone network says it reached the phone.", OK)
        if outcome in ("failed", "rejected", "expired"):
            reason = detail.get("reason") or "the phone network gave no reason"
            if detail.get("delivery_status") == "delivered":
                # Out of order: the network had already said the text reached the phone.
                return ("Phone network update",
                        f"A late report said it was not delivered ({reason}), after the "
                        "network had said it reached the phone: it stays delivered.", PLAIN)
            return ("Not delivered", f"{reason[:1].upper()}{reason[1:]}.", BAD)
        return ("Phone network update", f"It says: {outcome or 'no status'}.", PLAIN)

    def _code_resend(self, event, detail, item):
        channel = detail.get("channel")
        by = f" by {'text' if channel == 'sms' else 'email'}" if channel else ""
        count = detail.get("count")
        which = f" (resend {count} of {MAX_RESENDS})" if count else ""
        return ("Client asked for the code again", f"The same code{by}{which}.", PLAIN)

    def _code_entry(self, event, detail, item):
        outcome = event.outcome
        if outcome == "accepted":
            return ("Code typed: right", "", OK)
        if outcome == "wrong":
            self.wrong += 1
            steps_off = detail.get("steps_off")
            if isinstance(steps_off, int) and steps_off:
                return ("Code typed: wrong time",
                        f"Wrong code {self.wrong} of {MAX_WRONG_CODES}. It is the authenticator "
                        f"app's code {app_clock_words(steps_off)} of now: the phone's "
                        "clock is probably off.", WARN)
            return ("Code typed: wrong", f"Wrong code {self.wrong} of {MAX_WRONG_CODES}.", WARN)
        if outcome == "replayed":
            return ("Code typed: already used",
                    "An authenticator app code that had already been used; not counted as a "
                    "wrong try.", WARN)
        if outcome == "superseded":
            earlier = self.facts.earlier.get(detail.get("earlier_sign_in"))
            if detail.get("earlier_sign_in"):
                then = f"at {_hhmm(earlier.created_at, self.tz)}" if earlier else "before"
                return ("Code typed: from an earlier sign-in",
                        f"The code of the sign-in {then}, not this one's; not counted as a "
                        f"wrong try.", BAD)
            newer = self.facts.successor
            then = f" by the sign-in at {_hhmm(newer.created_at, self.tz)}" if newer else ""
            return ("Code typed: too late, replaced",
                    f"This sign-in had already been replaced{then}.", BAD)
        if outcome == "expired":
            return ("Code typed: too late, ran out",
                    f"The code ran out at {_hhmm(self.facts.sign_in.expires_at, self.tz)}.", BAD)
        if outcome == "locked":
            if self.wrong == MAX_WRONG_CODES - 1:
                self.wrong += 1
                return ("Code typed: wrong",
                        f"Wrong code {self.wrong} of {MAX_WRONG_CODES}, so this sign-in was "
                        f"stopped.", BAD)
            return ("Code typed: sign-in stopped",
                    "This sign-in had been stopped, or the account was locked.", BAD)
        if outcome == "used":
            return ("Code typed again", "It had already been used to sign in.", WARN)
        return ("Code typed", outcome or "", PLAIN)

    def _signin_superseded(self, event, detail, item):
        newer = self.facts.successor
        then = f" at {_hhmm(newer.created_at, self.tz)}" if newer else ""
        return ("Replaced", f"A new sign-in{then} made a new code; this code stopped working.",
                WARN)

    def _signin_locked(self, event, detail, item):
        return ("Ended by an account lock",
                "Too many wrong passwords or codes on the account.", BAD)

    def _signin_expired(self, event, detail, item):
        return ("Code ran out", "Ten minutes passed without it being used.", WARN)

    def _signed_in(self, event, detail, item):
        return ("Signed in", "", OK)

    def _oidc_code_issued(self, event, detail, item):
        return ("Sent on to the app", f"{detail.get('client', 'The app')} received the sign-in.",
                OK)

    def _oidc_denied(self, event, detail, item):
        return ("Kept out of an app", f"{detail.get('client', 'An app')}: "
                f"{detail.get('reason', 'the access rules do not let them in.')}", BAD)

    def _oidc_bad_request(self, event, detail, item):
        if event.outcome == "redirect_mismatch":
            return ("App's request refused", f"{detail.get('client', 'An app')} asked to return "
                    f"to an address it has not registered: {detail.get('redirect_uri', '')}.", BAD)
        return ("App's request refused", f"{detail.get('client', 'An app')}: "
                f"{detail.get('description') or event.outcome}.", BAD)

    def _signin_cancelled(self, event, detail, item):
        if detail.get("by") in ENDED_BECAUSE:
            # What ended it, and who when staff did (giving the account back, switching it off).
            by = f" By {self.facts.actors[event.actor_id]}." \
                if event.actor_id in self.facts.actors else ""
            return ("Ended", f"{ENDED_BECAUSE[detail['by']]}{by}", PLAIN)
        if event.actor_id or detail.get("by") == "support":
            by = self.facts.actors.get(event.actor_id, "staff")
            return ("Ended by staff", f"Ended by {by} from the support console.", PLAIN)
        return ("Ended", "Before its code was used.", PLAIN)

    def _other(self, event, detail, item):
        outcome = (event.outcome or "").lower()
        if event.type.startswith("delivery_") and outcome == "delivered":
            return ("Delivered", "The phone network says it reached the phone.", OK)
        if event.type.startswith("delivery_") and outcome in ("failed", "expired", "rejected"):
            reason = detail.get("reason") or (item.last_error if item else None) or outcome
            return ("Not delivered", f"{reason_words(reason)}.", BAD)
        by = f" by {self.facts.actors[event.actor_id]}" if event.actor_id in self.facts.actors else ""
        return (_humanise(event.type), f"{event.outcome or ''}{by}".strip(), PLAIN)


def steps(facts: SignInFacts, tz: str) -> list[Step]:
    """Everything that happened to this sign-in, oldest first."""
    teller = _Teller(facts, tz)
    told = [teller.step(event) for event in facts.events]
    if facts.app:
        # First among steps at the same moment (the sort below is stable).
        told.insert(0, Step(facts.sign_in.created_at, "Started by an app",
                            f"{facts.app} sent the client here to sign in.", PLAIN))
    # Receipts and cancellations may leave no event of their own: read them off the rows.
    receipt_events = {(e.delivery_id, (e.outcome or "").lower()) for e in facts.events
                      if e.type != "delivery_failed"}
    default = "The phone network gave no reason"
    for item in facts.deliveries:
        if item.delivered_at and (item.id, "delivered") not in receipt_events:
            told.append(Step(item.delivered_at, "Delivered",
                             "The phone network says it reached the phone.", OK))
        if (item.status == "failed" and item.sent_at and item.failed_at
                and not {(item.id, o) for o in ("failed", "rejected", "expired")} & receipt_events):
            told.append(Step(item.failed_at, "Not delivered",
                             f"{reason_words(item.last_error or default)}.", BAD))
        if item.status == "cancelled" and not item.sent_at:
            told.append(Step(facts.sign_in.ended_at or item.created_at, "Not sent",
                             "The sign-in had ended before this message went out.", PLAIN))
    return sorted(told, key=lambda s: s.at)


def ending(facts: SignInFacts, tz: str) -> str:
    """How the sign-in ended, in a few words."""
    sign_in = facts.sign_in
    at = _hhmm(sign_in.ended_at, tz)
    if sign_in.status == "pending":
        return f"Waiting for the code (it works until {_hhmm(sign_in.expires_at, tz)})"
    if sign_in.status == "cancelled" and not ended_by_staff(facts):
        why = ended_because(facts)
        return f"Ended at {at}" + (f": {why[:1].lower()}{why[1:].rstrip('.')}" if why else "")
    return {
        "completed": f"Signed in at {at}",
        "superseded": f"Replaced by a newer sign-in at {at}",
        "expired": f"Code ran out at {at}",
        "locked": f"Stopped after too many wrong codes at {at}",
        "cancelled": f"Ended by staff at {at}",
    }.get(sign_in.status, f"{sign_in.status.capitalize()} at {at}")


# Account events outside any sign-in: what they are called, what they mean, and their tone.
ACTIVITY = {
    "password_failed": ("Wrong password typed", "No code is sent until the password is right.",
                        WARN),
    "logout": ("Logged out", "", PLAIN),
    "account_locked": ("Account locked", "Too many wrong passwords or codes.", BAD),
    "account_unlocked": ("Account unlocked", "", OK),
    "support_channel_switched": ("Switched to codes by email", "", PLAIN),
    "support_export": ("Sign-in timeline exported", "", PLAIN),
    "user_added": ("Account created", "", PLAIN),
    "password_set": ("Password set", "", PLAIN),
    "role_set": ("Role changed", "", PLAIN),
    "delivery_queued": ("Message queued", "", PLAIN),
    # A message of no sign-in (a lock notice, an invitation) handed over: not "Delivery sent
    # · sent".
    "delivery_sent": ("Message handed over", "", PLAIN),
    # Accounts without a shell (services.accounts).
    "user_invited": ("Invited", "An invitation email with a link good for 7 days.", PLAIN),
    "invitation_resent": ("Invitation sent again", "Earlier invitation links stopped working.",
                          PLAIN),
    "invitation_revoked": ("Invitation withdrawn", "Its link stopped working.", WARN),
    "invitation_accepted": ("Invitation accepted", "They chose a password.", OK),
    "password_reset_requested": ("New password asked for", "", PLAIN),
    "link_refused": ("Link did not work", "", WARN),
    "link_email_cancelled": ("Link email not sent", "", PLAIN),
    "account_deactivated": ("Account switched off", "Every session and sign-in ended.", BAD),
    # Who did it (staff, or the server's command line) is added as for every staff action.
    "account_recovered": ("Account given back", "Every session, link, passkey, the "
                          "authenticator app and the mobile number ended; a link to choose a "
                          "new password sent.", BAD),
    "account_reactivated": ("Account switched on again", "", OK),
    "email_change_requested": ("New email address asked for", "", PLAIN),
    "email_changed": ("Sign-in email changed", "", WARN),
    "signed_out_elsewhere": ("Signed out everywhere else", "", PLAIN),
    "signed_out_device": ("Signed out one device", "From the client's devices page.", PLAIN),
    "code_refused": ("No code sent", "", WARN),
    "staff_action_refused": ("Staff action refused", "", BAD),
    # OpenID Connect (services/federation/oidc.py).
    "oidc_code_issued": ("Signed in to an app", "", OK),
    "oidc_denied": ("Kept out of an app by the access rules", "", BAD),
    "oidc_bad_request": ("An app's sign-in request was refused", "", BAD),
    "oidc_code_replayed": ("An app used a sign-in code twice",
                           "Refused; what the first use gave the app was withdrawn.", BAD),
    "oidc_code_expired": ("An app was too slow to use a sign-in code", "", WARN),
    # Fewer codes: passkeys, authenticator apps, trusted devices.
    "passkey_added": ("Passkey added", "", OK),
    "passkey_removed": ("Passkey removed", "", PLAIN),
    "passkey_refused": ("Passkey refused", "", WARN),
    "passkey_clone_warning": ("Passkey refused: possible copy", "", BAD),
    "totp_setup_started": ("Authenticator app setup begun", "", PLAIN),
    "totp_setup_code": ("Authenticator app setup code typed", "", PLAIN),
    "totp_confirmed": ("Authenticator app set up", "Codes now come from the app.", OK),
    "totp_removed": ("Authenticator app removed", "Codes come by email.", PLAIN),
    "trusted_device_refused": ("Trusted-device mark refused", "", WARN),
    "device_forgotten": ("Trusted device forgotten", "By the client.", PLAIN),
    "devices_forgotten": ("Trusted devices forgotten", "", PLAIN),
}

# Why a link did not work, and why no code was sent, in words.
_LINK_OUTCOMES = {"expired": "it had run out", "used": "it had already been used",
                  "revoked": "a newer one had replaced it", "stale": "the account had changed"}
_REFUSALS = {"deactivated": "The account is switched off.",
             "locked": "The password was right, but the account is locked, so no code was sent.",
             "account_cap": "Too many codes for this account in an hour.",
             "ip_cap": "Too many codes from this network in an hour."}


# Why a staff POST was refused (blueprints.support.note_refused).
_STAFF_REFUSALS = {"staff account": "only an admin may change a staff account",
                   "own account": "no one may do that to their own account",
                   "hidden": "only an admin may see an admin's account",
                   "admin only": "only an admin may change roles"}


# Why a passkey was refused, for support (services/authenticators/passkeys.py outcomes).
PASSKEY_REFUSALS = {
    "invalid": "the browser's answer did not check out (wrong site, no fingerprint, face or "
               "PIN check, or a damaged answer)",
    "unknown": "a passkey this account does not have (perhaps removed)",
    "inactive": "the account cannot sign in",
}


def app_clock_words(steps_off: int) -> str:
    """"about 2 minutes ahead" for an authenticator app code this many 30-second steps away."""
    from services.authenticators.totp import drift_words

    return drift_words(steps_off)


def sign_in_method(channel: str, destination: Optional[str]) -> str:
    """How a sign-in proved the second factor, in a few words for support."""
    if channel == "passkey":
        return f"passkey “{destination}”, no password or code"
    if channel == "device":
        return "password on a trusted device, no code"
    if channel == "totp":
        return "authenticator app, nothing sent"
    return f"{_channel_words(channel, destination)}"


def _fewer_codes_detail(event, extra: dict) -> Optional[str]:
    """The details of a passkey, app or trusted-device event, or None for other events."""
    if event.type in ("passkey_added", "passkey_removed") and extra.get("name"):
        synced = " Kept in a password manager, so it may be on several devices." \
            if extra.get("synced") else ""
        return f"“{extra['name']}”.{synced}"
    if event.type == "passkey_refused":
        reason = PASSKEY_REFUSALS.get(event.outcome or "", event.outcome or "")
        name = f" “{extra['name']}”" if extra.get("name") else ""
        return _sentence(f"the passkey{name}: {reason}.")
    if event.type == "passkey_clone_warning":
        return (f"“{extra.get('name', '?')}” sent counter {extra.get('given_count')} after "
                f"{extra.get('stored_count')}: a copy of the key may exist. Ask the client to "
                "remove it and add a new one.")
    if event.type == "trusted_device_refused":
        return _sentence(f"{extra.get('reason', event.outcome or '')}; a code was asked for.")
    if event.type == "devices_forgotten":
        return f"{extra.get('count', '?')} device(s): {extra.get('reason', '')}."
    if event.type == "totp_setup_code":
        off = extra.get("steps_off")
        if isinstance(off, int) and off:
            return f"Wrong: the phone's clock looks {app_clock_words(off)}."
        return "Right." if event.outcome == "accepted" else "Wrong."
    return None


def activity_step(event, actors: dict, tz: str) -> Step:
    """An account event that belongs to no sign-in (wrong passwords, staff actions), as a step."""
    what, detail, tone = ACTIVITY.get(event.type, (_humanise(event.type), event.outcome or "",
                                                   PLAIN))
    extra = event.detail or {}
    if event.actor_id in actors:
        detail = f"{detail} By {actors[event.actor_id]}.".strip()
    elif extra.get("by") == "cli":
        detail = f"{detail} From the server's command line.".strip()
    if event.type == "account_locked" and _parse_time(extra.get("until")):
        # A lock may last a day: its end is said with the day when that is not the lock's.
        until = _on_day(_parse_time(extra["until"]), event.created_at, tz)
        detail = f"{detail} Locked until {until}."
    if event.type == "link_refused":
        what_link = {"invitation": "An invitation link", "reset": "A password link",
                     "email": "An email confirmation link"}.get(extra.get("purpose"), "A link")
        detail = f"{what_link} was opened, but {_LINK_OUTCOMES.get(event.outcome, 'it did not work')}."
    if event.type == "link_email_cancelled":
        what_email = {"invitation": "An invitation", "reset": "A password link",
                      "email_proof": "An email confirmation link"}.get(extra.get("kind"), "A link")
        why = extra.get("reason") or "its link no longer works"
        detail = f"{what_email} was not sent: {why}."
    if event.type == "password_reset_requested":
        detail = ("A link was emailed." if event.outcome == "sent"
                  else "Nothing was sent (too many asked for lately, or the account is off).")
        if event.actor_id in actors:
            detail = f"{detail} By {actors[event.actor_id]}."
    if event.type == "role_set" and extra.get("from") and extra.get("to"):
        detail = f"From {extra['from']} to {extra['to']}. {detail}".strip()
    if event.type == "staff_action_refused":
        why = _STAFF_REFUSALS.get(event.outcome or "", "they may not do it")
        who = actors.get(event.actor_id, "A member of staff")
        detail = f"{who} asked to “{extra.get('action', '?')}” this account, refused: {why}."
    if event.type == "code_refused":
        detail = _REFUSALS.get(event.outcome or "", detail)
        until = _parse_time(extra.get("until"))
        if until is not None and event.outcome in ("account_cap", "ip_cap"):
            # What the client was told, and needs to hear again: an unlock does not lift it.
            detail = f"{detail} None can be sent until {_on_day(until, event.created_at, tz)}."
    if event.type in ("email_change_requested", "email_changed") and extra.get("to"):
        detail = f"To {extra['to']}."
    if event.type == "password_set" and extra.get("by") in ("reset", "change", "invitation"):
        detail = {"reset": "With a link from a “forgotten password” email.",
                  "change": "By the client, from their account page.",
                  "invitation": "When they accepted the invitation."}[extra["by"]]
    if event.type in ("delivery_failed", "delivery_retry") and extra.get("reason"):
        # As a sign-in's message says in its timeline (_Teller): what went wrong, in words.
        reason = reason_words(extra["reason"])
        detail = f"{reason[:1].upper()}{reason[1:]}."
    if event.type == "delivery_queued" and extra.get("kind"):
        kind = extra['kind'].replace('_', ' ')
        article = "An" if kind[:1] in "aeiou" else "A"
        detail = f"{article} {kind} message by {extra.get('channel', 'email')}."
    if event.type.startswith("oidc_") and extra.get("client"):
        why = extra.get("reason") or (f"It asked to return to {extra['redirect_uri']}, which it "
                                      "has not registered." if event.outcome == "redirect_mismatch"
                                      and extra.get("redirect_uri") else "")
        detail = " ".join(part for part in (f"{extra['client']}.", why, detail) if part)
    detail = _fewer_codes_detail(event, extra) or detail
    return Step(event.created_at, what, detail, tone)
