"""Text messages through Vonage's SMS API with the official SDK, and their delivery receipts.

Sending: every message carries the outbox row's `client_ref`, so a receipt can be tied to
its delivery. Vonage's answer is turned into a DeliveryError that says whether retrying can
help (throttled, an outage) or not (a barred number, no credit), with a reason a client can read.

Receipts: Vonage calls /webhooks/vonage/dlr when the phone network reports what became of a
message. With VONAGE_SIGNATURE_SECRET set, a receipt must carry a valid `sig`; either way it
must name a message we sent, by its Vonage message id and our client reference.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import importlib.metadata
import logging
import re
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Mapping, Optional

from flask import current_app
from sqlalchemy import select

from extensions import db
from models import Delivery, Event
from services import audit, clock
from services.delivery.handover import DeliveryError

if TYPE_CHECKING:
    from vonage_http_client import HttpClient
    from vonage_http_client.errors import HttpRequestError
    from vonage_sms.errors import SmsError

log = logging.getLogger("clientgate.sms")

# The SDK logs every request body at DEBUG, and a body holds the code: never let that through.
logging.getLogger("vonage").setLevel(logging.INFO)

# --- sending --------------------------------------------------------------------------

# SMS API statuses that are worth trying again after a pause.
TRANSIENT_STATUSES = {
    "1": "the text message service is busy (too many messages at once)",
    "5": "the text message service had a problem of its own",
    "10": "the text message service is busy",
}
# Statuses that no retry will cure, in words a client or support person understands.
PERMANENT_STATUSES = {
    "2": "our text message account is not set up correctly (a detail was missing)",
    "3": "the text message service did not accept the number or the message as valid",
    "4": "the text message service refused our account details",
    "6": "the text message service did not recognise the number (invalid number)",
    "7": "this number is barred from receiving text messages",
    "8": "our text message account is suspended",
    "9": "our text message account has run out of credit",
    "11": "our text message account is not set up for sending",
    "12": "the message was too long",
    "14": "the text message service refused our account details (bad signature)",
    "15": "the text message service did not accept our sender name",
    "22": "the text message service did not recognise the mobile network",
    "23": "the text message service did not accept our receipt address",
    "29": "our text message account may send only to approved test numbers",
    "32": "the text message service refused our account details",
    "33": "this number is no longer in service",
}

# GSM 03.38: the characters a plain text message can carry. Anything else needs "unicode".
_GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENDED = "^{}\\[~]|€\f"
_GSM = frozenset(_GSM_BASIC + _GSM_EXTENDED)


def message_type(text: str) -> str:
    """"text" when every character fits the GSM alphabet, else "unicode" (so "•" is not lost)."""
    return "text" if all(ch in _GSM for ch in text) else "unicode"


def _client(seconds: float) -> HttpClient:
    """The SDK's HTTP client, for the SMS API only, done within `seconds`.

    Not the SDK's `Vonage` class: that builds a client for each of its fifteen APIs (voice,
    video, verify...) and imports them all, 10 MB more in every worker that sends a text.

    One try only (the dispatcher retries, with backoff, within the message's claim): the SDK
    would otherwise try a refused connection 4 times and a dropped one 10. requests' timeouts
    bound each step: a quarter of `seconds` to connect, another for TLS (urllib3 gives the
    handshake the connect timeout), and half for Vonage's answer.
    """
    from vonage_http_client import Auth, HttpClient, HttpClientOptions

    config = current_app.config
    client = HttpClient(
        Auth(api_key=config["VONAGE_API_KEY"], api_secret=config["VONAGE_API_SECRET"]),
        HttpClientOptions(rest_host=config["VONAGE_REST_HOST"], max_retries=0,
                          pool_connections=1, pool_maxsize=1),
        _sdk_version(),
    )
    # The options take whole seconds for both steps; requests takes (connect, read).
    client._timeout = (seconds / 4, seconds / 2)
    if config.get("VONAGE_CA_BUNDLE"):
        # Tests trust their stub's own certificate, for this client only. requests lets
        # REQUESTS_CA_BUNDLE (and proxy variables) in the environment override a session's
        # `verify`, so this session ignores the environment.
        client._session.verify = config["VONAGE_CA_BUNDLE"]
        client._session.trust_env = False
    return client


@functools.cache
def _sdk_version() -> str:
    """The vonage package's version, for the User-Agent the SDK itself would send."""
    return importlib.metadata.version("vonage")


def _status_of(client: HttpClient, exc: SmsError) -> str:
    """The SMS API status of a refused message, from Vonage's answer (or its error text)."""
    try:
        for message in client.last_response.json()["messages"]:
            if str(message.get("status")) != "0":
                return str(message["status"])
    except (AttributeError, KeyError, TypeError, ValueError):
        pass
    match = re.search(r"error code (\d+)", str(exc))
    return match.group(1) if match else "?"


def refusal(status: str) -> DeliveryError:
    """The DeliveryError for an SMS API status other than 0."""
    if status in TRANSIENT_STATUSES:
        return DeliveryError(TRANSIENT_STATUSES[status])
    reason = PERMANENT_STATUSES.get(
        status, f"the text message service refused it (status {status})")
    return DeliveryError(reason, permanent=True)


def _http_refusal(exc: HttpRequestError) -> DeliveryError:
    code = getattr(exc.response, "status_code", 0) or 0
    if code in (401, 403):
        return DeliveryError("the text message service refused our account details",
                             permanent=True)
    if code == 429 or code >= 500:
        return DeliveryError(f"the text message service is busy or down (HTTP {code})")
    return DeliveryError(f"the text message service refused it (HTTP {code})", permanent=True)


# How long Vonage may keep trying to reach the phone (its `ttl`, in milliseconds): 72 hours
# unless told; it takes from 20 seconds to 7 days.
TTL_MS_RANGE = (20_000, 604_800_000)


def ttl_ms(valid_for: timedelta) -> int:
    """Vonage's `ttl` for a message that is of no use after `valid_for`."""
    low, high = TTL_MS_RANGE
    return max(low, min(high, int(valid_for.total_seconds() * 1000)))


def send_sms(to: str, text: str, *, client_ref: Optional[str] = None,
             valid_for: Optional[timedelta] = None,
             deadline: Optional[float] = None) -> tuple[str, ...]:
    """Hand one SMS to Vonage by `deadline` (time.monotonic(); VONAGE_TIMEOUT from now if not
    given); returns the message id of each part it went out in (a long text is several), or
    raises DeliveryError. With `valid_for`, the phone network stops trying once it has passed
    (a phone switched on hours later does not get a code long dead)."""
    # The SMS API's part of the SDK, with pydantic, adds ~13 MB to a process: it loads with
    # the first text message, not in every worker of a portal that sends none.
    from pydantic import ValidationError
    from vonage_http_client.errors import HttpRequestError
    from vonage_sms import Sms, SmsMessage
    from vonage_sms.errors import PartialFailureError, SmsError
    from vonage_utils import VonageError

    seconds = current_app.config["VONAGE_TIMEOUT"]
    if deadline is not None:
        seconds = min(seconds, deadline - time.monotonic())
    if seconds <= 0:
        raise DeliveryError("its time to be handed to the text message service ran out")
    client = None
    try:
        message = SmsMessage(
            to=to.lstrip("+"), from_=current_app.config["VONAGE_SMS_FROM"], text=text,
            client_ref=client_ref, type=message_type(text),
            ttl=ttl_ms(valid_for) if valid_for is not None else None,
        )
        client = _client(seconds)
        response = Sms(client).send(message)
        parts = tuple(part.message_id for part in response.messages if part.message_id)
    except PartialFailureError as exc:
        # A long text went out in parts and some were refused: judge by the first refusal.
        raise refusal(_status_of(client, exc)) from exc
    except SmsError as exc:
        raise refusal(_status_of(client, exc)) from exc
    except HttpRequestError as exc:
        raise _http_refusal(exc) from exc
    except OSError as exc:  # requests' connection errors, timeouts and TLS failures
        raise DeliveryError(
            f"the text message service could not be reached ({type(exc).__name__})") from exc
    except (ValidationError, VonageError) as exc:
        raise DeliveryError(f"the text message settings are not usable ({type(exc).__name__})",
                            permanent=True) from exc
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise DeliveryError("the text message service gave an answer we could not read") from exc
    finally:
        if client is not None:
            client._session.close()
    if not parts:
        raise DeliveryError("the text message service gave no message id")
    return parts


# --- delivery receipts ----------------------------------------------------------------

# Receipt statuses: the ones that end a message, and the ones that only report progress.
FINAL_RECEIPTS = ("delivered", "failed", "rejected", "expired")
PROGRESS_RECEIPTS = ("accepted", "buffered", "unknown")

# DLR err-code values, in words a client understands ("Could not be sent: <reason>.").
RECEIPT_ERRORS = {
    "1": "the phone network did not say why",
    "2": "the phone was switched off or out of signal",
    "3": "the number is not in use",
    "4": "the phone is set to refuse these messages",
    "5": "the number has moved network and could not be reached",
    "6": "the phone network took it for spam",
    "7": "the phone was busy",
    "8": "the phone network had a problem",
    "9": "the phone network says the number is not valid",
    "10": "the phone network refused the message",
    "11": "there is no route to that number",
    "12": "the number could not be reached",
    "13": "the phone does not accept messages of this kind (age restriction)",
    "14": "the phone network has blocked the number",
    "15": "the pay-as-you-go phone has no credit",
    "16": "the text message service's limit was reached",
    "50": "the phone network filtered the message",
    "51": "the phone network filtered the message",
    "52": "the phone network filtered the message",
    "53": "the phone network filtered the message",
    "54": "the phone network refused it for regulatory reasons",
    "99": "the phone network did not say why",
}
EXPIRED_REASON = ("your phone did not receive it in time (it may be switched off "
                  "or out of signal)")

# A signed receipt older or newer than this is refused: it may be a replay.
SIGNATURE_MAX_AGE = timedelta(minutes=15)
MAX_RECEIPT_FIELDS = 40
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# Vonage's field names ("messageId", "err-code", "client-ref"...).
_FIELD_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")
MAX_RECEIPT_VALUE = 500

# Vonage's HMAC signature methods (VONAGE_SIGNATURE_METHOD); "md5hash" is MD5 over the text
# with the secret appended, the dashboard's default.
_HMACS = {"md5": hashlib.md5, "sha1": hashlib.sha1, "sha256": hashlib.sha256,
          "sha512": hashlib.sha512}


def _signed_text(params: Mapping[str, str]) -> str:
    """Vonage's canonical text: "&key=value" for every field but `sig`, sorted by key.

    Vonage replaces "&" and "=" in values with "_" before signing.
    """
    return "".join(
        f"&{key}={str(params[key]).replace('&', '_').replace('=', '_')}"
        for key in sorted(params) if key != "sig"
    )


def signature_matches(params: Mapping[str, str], secret: str, method: str = "md5hash") -> bool:
    """True when `sig` is Vonage's signature of the other fields by the configured method
    (VONAGE_SIGNATURE_METHOD); a receipt signed any other way, MD5 included, is refused."""
    given = str(params.get("sig") or "").strip().lower()
    if not given or not re.fullmatch(r"[0-9a-f]+", given):
        return False
    text = _signed_text(params).encode()
    key = secret.encode()
    if method == "md5hash":
        expected = hashlib.md5(text + key).hexdigest()
    elif method in _HMACS:
        expected = hmac.new(key, text, _HMACS[method]).hexdigest()
    else:
        return False
    return hmac.compare_digest(given, expected)


@dataclass
class ReceiptResult:
    """What the webhook answers: an HTTP status and a short reason."""

    http_status: int
    result: str
    delivery: Optional[Delivery] = None


def _fresh(timestamp: str | None) -> bool:
    try:
        sent = datetime.fromtimestamp(int(str(timestamp)), timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return False
    return abs(clock.now() - sent) <= SIGNATURE_MAX_AGE


def _reported_time(params: Mapping[str, str], item: Delivery) -> datetime:
    """When Vonage says it happened, if plausible; else now."""
    now = clock.now()
    try:
        reported = datetime.strptime(str(params.get("message-timestamp")), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        return now
    reported = reported.replace(tzinfo=timezone.utc)
    earliest = (item.sent_at or item.created_at) - timedelta(minutes=1)
    if earliest <= reported <= now + timedelta(minutes=1):
        return min(reported, now)
    return now


def _part_ids(item: Delivery) -> set[str]:
    """The Vonage ids of a text's parts (one, for a text that fitted in one)."""
    return set(item.provider_parts or ()) or {item.provider_ref}


def _find_delivery(message_id: str, client_ref: Optional[str], signed: bool) -> Optional[Delivery]:
    """The SMS this receipt is about: its client reference (which nobody can guess) must match,
    and so must the message id, one of its parts', once we know them. A signed receipt may omit
    the reference (Vonage sends it whenever the message had one, as ours all do); it is then
    found by its first part's id."""
    if client_ref:
        item = db.session.scalar(select(Delivery).where(Delivery.client_ref == client_ref))
        if item is None or item.channel != "sms":
            return None
        if item.provider_ref is not None and message_id not in _part_ids(item):
            return None
        return item
    if not signed:
        return None
    return db.session.scalar(
        select(Delivery).where(Delivery.provider_ref == message_id, Delivery.channel == "sms")
        .limit(1)
    )


def _our_reference(client_ref: Optional[str]) -> bool:
    """Whether a text of ours carries this reference. Every text we send has one from the
    moment it is queued, so a receipt naming another is for someone else's message."""
    if not client_ref:
        return True  # no reference to tell by: it may still be ours (_find_delivery)
    return db.session.scalar(
        select(Delivery.id).where(Delivery.client_ref == client_ref, Delivery.channel == "sms")
    ) is not None


def check_receipt_fields(params: Mapping[str, str]) -> Optional[str]:
    """Why a receipt is malformed, or None when its shape is right."""
    if len(params) > MAX_RECEIPT_FIELDS:
        return "too many fields"
    for key, value in params.items():
        if not isinstance(value, str) or len(value) > MAX_RECEIPT_VALUE:
            return "a field is not a short text"
        # The signed text replaces "&" and "=" in values, not in names: a name holding them
        # could swallow the fields before it and still sign the same (_signed_text).
        if not _FIELD_NAME.fullmatch(key):
            return "a field name is not a plain word"
        # A JSON body is not checked for NULs as forms and queries are (app.py): PostgreSQL
        # refuses a NUL in a query (a 500), and one kept in an event's detail breaks every
        # later look at that message's receipts. Vonage sends no control characters.
        if _CONTROL.search(key) or _CONTROL.search(value):
            return "a field holds a control character"
    message_id = params.get("messageId", "")
    if not re.fullmatch(r"[A-Za-z0-9\-]{1,64}", message_id):
        return "no messageId"
    if params.get("status") not in FINAL_RECEIPTS + PROGRESS_RECEIPTS:
        return "no known status"
    return None


def receive_receipt(params: Mapping[str, str]) -> ReceiptResult:
    """Check a Vonage delivery receipt and record it on its delivery (the caller commits)."""
    problem = check_receipt_fields(params)
    if problem:
        return ReceiptResult(400, f"malformed receipt: {problem}")
    config = current_app.config
    secret = config.get("VONAGE_SIGNATURE_SECRET")
    signed = False
    if secret:
        if not signature_matches(params, secret,
                                 config.get("VONAGE_SIGNATURE_METHOD") or "md5hash"):
            return ReceiptResult(403, "bad signature")
        if not _fresh(params.get("timestamp")):
            return ReceiptResult(403, "signature timestamp missing or too old")
        signed = True
    api_key = params.get("api-key")
    if api_key and config.get("VONAGE_API_KEY") and api_key != config["VONAGE_API_KEY"]:
        return ReceiptResult(403, "not our account")

    item = _find_delivery(params["messageId"], params.get("client-ref"), signed)
    if item is None:
        if signed and not _our_reference(params.get("client-ref")):
            # Vonage's own receipt for a message some other program sent from this account
            # (its webhook is one per account): taken, so that it is not retried for a day.
            return ReceiptResult(200, "not one of our messages")
        return ReceiptResult(404, "unknown message")
    if item.status in ("queued", "sending"):
        # The receipt overtook our own record of the send: Vonage will try again shortly.
        return ReceiptResult(409, "message not recorded as sent yet", item)
    # The same receipt twice (a replay, or Vonage retrying) is acknowledged, not applied again.
    # The message's row is locked first, and read again under the lock, so two receipts at
    # once (two copies, or two parts of one text) are judged one after the other.
    db.session.execute(
        select(Delivery).where(Delivery.id == item.id).with_for_update(key_share=True)
        .execution_options(populate_existing=True))
    fingerprint = receipt_fingerprint(params)
    if db.session.scalar(
        select(Event.id).where(
            Event.type == "delivery_receipt", Event.delivery_id == item.id,
            Event.detail["receipt"].as_string() == fingerprint,
        ).limit(1)
    ) is not None:
        return ReceiptResult(200, "already recorded", item)
    _apply(item, params, fingerprint)
    return ReceiptResult(200, "recorded", item)


def receipt_fingerprint(params: Mapping[str, str]) -> str:
    """What makes a receipt itself: every field (a signed one has its nonce and timestamp)."""
    return hashlib.sha256(_signed_text({**params, "sig": ""}).encode()).hexdigest()[:32]


def _apply(item: Delivery, params: Mapping[str, str], fingerprint: str) -> None:
    """Record a receipt: a text is delivered once every part of it is, and failed once any
    part failed (a code in a lost part, or a text cut short, is no use to the client)."""
    status = params["status"]
    err_code = params.get("err-code") or ""
    at = _reported_time(params, item)
    reason = None
    parts = dict(item.provider_parts or {})  # empty for a text in one part
    part = params["messageId"]
    if status == "delivered":
        # Delivered is the last word on a part, even after an earlier failure report.
        if parts:
            parts[part] = "delivered"
        if all(state == "delivered" for state in parts.values()):
            item.status, item.delivered_at = "delivered", at
    elif status in ("failed", "rejected", "expired"):
        # The network's reason goes in the record even when a part already delivered makes
        # this report change nothing ("delivery_status" then says "delivered"): support
        # reads it in the timeline, where "gave no reason" would not be true.
        reason = EXPIRED_REASON if status == "expired" else RECEIPT_ERRORS.get(
            err_code, "the phone network could not deliver it")
        if (parts.get(part) if parts else item.status) != "delivered":
            if parts:
                parts[part] = "failed"
            item.status, item.failed_at, item.last_error = "failed", at, reason
    if parts:
        item.provider_parts = parts
    item.provider_ref = item.provider_ref or params["messageId"]
    audit.record(
        "delivery_receipt", user_id=item.user_id, sign_in_id=item.sign_in_id,
        delivery_id=item.id, outcome=status,
        detail={"at": at.isoformat(), "err_code": audit.clip(err_code, 8),
                "network": audit.clip(params.get("network-code"), 16),
                "reason": reason, "delivery_status": item.status, "receipt": fingerprint},
    )
