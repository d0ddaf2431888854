"""The durable outbox and its dispatcher: every message goes through the database.

A request only adds a row to `deliveries`. A dispatcher thread inside each app process
claims due rows atomically (a conditional UPDATE, so two workers never send the same row),
renders the message, hands it to the mail server or Vonage, and records the result. A
transient failure is retried with backoff until the code expires; a permanent one ends
as failed with a reason a person can read. Rows left behind by a crash or a restart are
picked up again when their claim runs out, or failed once their time to be sent has passed.
The mail server's certificate is always checked (`tls_context`).
"""

from __future__ import annotations

import atexit
import email.errors
import email.policy
import functools
import io
import itertools
import logging
import math
import os
import re
import secrets
import smtplib
import socket
import ssl
import threading
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from email.header import Header
from email.utils import make_msgid
from typing import Callable, Optional

from flask import Flask, current_app, has_app_context, render_template
from flask_mail import BadHeaderError, Connection, Message
from sqlalchemy import bindparam, event, func, or_, select, update
from sqlalchemy.orm import joinedload

import db_setup
from config import sender_address, sender_pair
from extensions import db
from models import Delivery, DispatcherBeat, SignIn
from services import audit, clock, contact, emails, keys, urls
from services.delivery.handover import DeliveryError, HandedOver

log = logging.getLogger("clientgate.delivery")

# Seconds to wait after the 1st, 2nd, ... failure; the last one repeats.
BACKOFF_SECONDS = (5, 15, 30, 60, 120, 300)
# How long a claimed message stays with the process that claimed it (DISPATCHER_CLAIM_SECONDS,
# default 90). A process that dies mid-send (a server lost, kill -9) leaves its claims behind;
# another process, on this server or any other, sends them once the lease runs out. A hand-over
# is cut short two thirds into it at the latest (_deadline), so none runs on while another
# process sends the same message; marking it sent asks that the claim is still this process's.
CLAIM_LEASE = timedelta(seconds=90)
NOTICE_GIVE_UP = timedelta(hours=24)
HEARTBEAT_EVERY = timedelta(seconds=10)
CODE_KINDS = ("code", "resend", "phone_proof")
# An error the dispatcher does not expect (a bug, a commit that fails after a send) is retried
# with the same backoff, but fails the message once it has been tried this often in all: the
# same bug would only fail again, while the code or link waits encrypted in the outbox.
UNEXPECTED_ERROR_ATTEMPTS = len(BACKOFF_SECONDS)


# --- queueing -------------------------------------------------------------------------

# This module knows no rules about codes or accounts: the layers that do register them here.
#
# PREPARERS: per kind of message, a function the dispatcher calls just before sending. It may
# fill in the row (user, kind, encrypted secret, values) or return why nothing is to be sent:
# "Forgotten password" is made here, so the request does the same work whether or not the
# address has an account (services.accounts.lifecycle); a sign-in's code is cancelled once its
# sign-in has ended (services.signin.codes), and a link's email once its link no longer works
# (services.accounts.messages).
PREPARERS: dict[str, Callable[[Delivery], Optional[str]]] = {}
# SWEEPS: tidy-ups for a dispatcher round, each returning how many rows it changed (the end of
# sign-ins whose code ran out, services.signin.codes).
SWEEPS: list[Callable[[], int]] = []


def _wake_after_commit() -> None:
    db.session.info["wake_dispatcher"] = True


def queue_code(sign_in: SignIn, *, kind: str, made_at: datetime) -> int:
    """Queue this sign-in's code for its channel (the caller commits); returns the message's id.
    The message says the code was asked for at `made_at`: when the sign-in began, or later
    for an authenticator app's sign-in switched to email.

    One plain INSERT, written at once (as audit.record writes): every sign-in queues a code,
    and nothing here needs the row as an object."""
    at = clock.now()
    item = {
        "user_id": sign_in.user_id, "sign_in_id": sign_in.id, "kind": kind,
        "channel": sign_in.channel, "destination": sign_in.destination,
        "payload": {"requested_at": made_at.isoformat(),
                    "expires_at": sign_in.expires_at.isoformat()},
        "code_encrypted": sign_in.code_encrypted, "status": "queued", "attempts": 0,
        "next_attempt_at": at, "give_up_at": sign_in.expires_at,
        "client_ref": secrets.token_hex(20), "created_at": at,
    }
    delivery_id = db.session.connection().execute(_QUEUE, item).inserted_primary_key[0]
    audit.record("delivery_queued", user_id=sign_in.user_id, sign_in_id=sign_in.id,
                 delivery_id=delivery_id, detail={"channel": sign_in.channel, "kind": kind})
    _wake_after_commit()
    return delivery_id


_QUEUE = Delivery.__table__.insert()


def queue_message(
    *, user_id: Optional[int], channel: str, destination: str, kind: str, template: str,
    values: dict, code_encrypted: Optional[str] = None, give_up_at=None,
) -> Delivery:
    """Queue a message rendered from templates/messages/<template>_<channel>.txt."""
    item = Delivery(
        user_id=user_id, kind=kind, channel=channel, destination=destination,
        payload={"template": template, "values": values},
        code_encrypted=code_encrypted, status="queued", next_attempt_at=clock.now(),
        give_up_at=give_up_at or clock.now() + NOTICE_GIVE_UP,
        client_ref=secrets.token_hex(20), created_at=clock.now(),
    )
    db.session.add(item)
    db.session.flush()
    audit.record("delivery_queued", user_id=user_id, delivery_id=item.id,
                 detail={"channel": channel, "kind": kind})
    _wake_after_commit()
    return item


# Which of a sign-in's messages the code page shows: the newest, the id breaking a tie (also
# the order of codes.STATUS_LOOKUP, the poll's fast path).
NEWEST_FIRST = (Delivery.created_at.desc(), Delivery.id.desc())


def latest_for(sign_in: SignIn) -> Optional[Delivery]:
    """The newest message of a sign-in, whose state the code page shows."""
    return db.session.scalar(_LATEST, {"sign_in": sign_in.id})


_LATEST = (select(Delivery).where(Delivery.sign_in_id == bindparam("sign_in"))
           .order_by(*NEWEST_FIRST).limit(1))


def failed_for(sign_in: Optional[SignIn]) -> bool:
    """Whether the newest message of this sign-in could not be sent (for good)."""
    latest = latest_for(sign_in) if sign_in is not None else None
    return latest is not None and latest.status == "failed"


# How a code email refused because the client's mailbox is full is recorded (its reply's codes
# follow in brackets, "(552 5.2.2)"): the support diagnosis and the client's code page both
# recognise the reason by it (mailbox_full).
MAILBOX_FULL = "the client's mailbox is full"
# What the client reads while a full mailbox holds their code back, and once it did until the
# code ran out. No codes or server words: they gave the right password, so being told that
# their own mailbox is full tells a stranger nothing.
_FULL_RETRYING = ("Your email provider says your mailbox is full, so we could not deliver your "
                  "code yet. Delete some emails (and empty your bin or deleted items) to make "
                  "room: we will keep trying until the code runs out.")
_FULL_FOR_CLIENTS = "your email provider said your mailbox was full"


def mailbox_full(reason: Optional[str]) -> bool:
    """Whether a message's reason (its last_error, or a retry's) is the client's full mailbox."""
    return bool(reason) and MAILBOX_FULL in reason


# How a code email turned away under a mail server's security or policy rules is recorded (an
# enhanced status code 5.7.X, RFC 3463: SPF, DKIM or DMARC not passing, the sending server's
# reputation, a spam filter, a relay that does not take our mail), its reply's codes following
# in brackets, "(550 5.7.26)". It is about the firm's mail, not the client's address: support's
# diagnosis and the client's code page recognise it by these words (policy_refusal). No
# "refused" in them: the diagnosis reads that as an address that takes no mail.
POLICY_REFUSAL = ("our email was turned away under a mail server's security or spam rules, "
                  "not for the client's address")
# What the client reads once it was: not that their address may be wrong. A mail server on the
# way (the firm's own relay, or the client's provider) turned it away, so no codes, no names.
_POLICY_FOR_CLIENTS = "our email was not accepted on its way to you"


# How a recipient the mail server refused for another reason is recorded, its reply codes in
# brackets: "(550)" (no such user: final) or "(451)" (retried). Support's diagnosis reads a
# final one as an address that takes no mail.
REFUSED_ADDRESS = "the mail server refused the address"


def policy_refusal(reason: Optional[str]) -> bool:
    """Whether a message's reason (its last_error, or a retry's) is a mail server's security
    or policy rules turning our email away (5.7.X), not the client's address."""
    return bool(reason) and POLICY_REFUSAL in reason


# What holds a message back that the client's code page tells them of (held_back_by).
HELD_BY_FULL_MAILBOX = "full mailbox"
HELD_BY_POLICY = "policy refusal"


def held_back_by(item) -> Optional[str]:
    """HELD_BY_FULL_MAILBOX while this message (a Delivery, or the poll's columns of one) is
    retried, or once it failed, because the client's mailbox is full; HELD_BY_POLICY once it
    failed because a mail server's security or policy rules turned it away (never retried):
    the code page says so, and that it is not the client's address nor anything they typed.
    Else None."""
    if item is None:
        return None
    failed = item.status == "failed"
    if mailbox_full(item.last_error) and (
            failed or (item.status in ("queued", "sending") and bool(item.attempts))):
        return HELD_BY_FULL_MAILBOX
    if failed and policy_refusal(item.last_error):
        return HELD_BY_POLICY
    return None


def _for_clients(reason: Optional[str]) -> str:
    """Why a message failed, as a client reads it: without the exception's name or the TLS
    detail, which support sees in the timeline ("... could not be reached (OSError)"), nor a
    full mailbox's codes ("(552 5.2.2)")."""
    if not reason:
        return "unknown reason"
    if mailbox_full(reason):
        return _FULL_FOR_CLIENTS
    if policy_refusal(reason):
        return _POLICY_FOR_CLIENTS
    if reason.startswith("the mail server's certificate"):
        return "our mail server could not be reached safely"
    return re.sub(r" \([A-Z][A-Za-z]+\)$", "", reason)


def describe(item: Optional[Delivery]) -> tuple[str, str]:
    """A short state and a sentence for people: ("queued", "Waiting to be sent")."""
    if item is None:
        return "none", "No message has been queued."
    if item.status in ("queued", "sending") and item.attempts and item.last_error:
        if mailbox_full(item.last_error):
            return "retrying", _FULL_RETRYING
        return "retrying", "Sending failed for a moment; we are trying again."
    # "Sent" is as far as we can see an email go; a text's network may report it delivered.
    sent = ("Sent. It can take a few minutes to arrive." if item.channel == "email"
            else "Sent to your mobile network.")
    return {
        "queued": ("queued", "Waiting to be sent."),
        "sending": ("sending", "Being sent now."),
        "sent": ("sent", sent),
        "delivered": ("delivered", "Delivered to your phone."),
        "failed": ("failed", f"Could not be sent: {_for_clients(item.last_error)}."),
        "cancelled": ("cancelled", "Not sent: this sign-in had already ended."),
    }.get(item.status, (item.status, item.status))


# --- rendering ------------------------------------------------------------------------

def render(item: Delivery, code: Optional[str]) -> tuple[str, str, Optional[str]]:
    """Subject, text and (for email) HTML of a message; the code or link goes in only here,
    at send time. A message whose values name a `link_endpoint` gets `link`, the absolute
    address of that endpoint with its secret token (kept encrypted like a code)."""
    tz = current_app.config["PORTAL_TIMEZONE"]
    payload = dict(item.payload or {})
    if item.kind in ("code", "resend"):
        template = "code"
        values = {
            "requested_at": clock.local(clock_from_iso(payload["requested_at"]), tz),
            "expires_at": clock.local(clock_from_iso(payload["expires_at"]), tz),
            "resend": item.kind == "resend",
        }
    else:
        template = payload["template"]
        values = dict(payload.get("values") or {})
        # The links every notice may name come from PORTAL_URL, so they are made here when
        # the payload lacks them: a message queued by an earlier release carries only what
        # its template needed then (its lockout email, sent after the upgrade, said "set a
        # new password at , or contact us").
        for name, endpoint in (("login_url", "auth.login"), ("forgot_url", "passwords.forgot")):
            if name not in values:
                values[name] = urls.absolute_url(endpoint)
    # The WebOTP line of a text ("@portal.firm.co.uk #123456") names PORTAL_URL's host, never
    # a request's Host header, so a phishing site cannot get the code filled in (issue 11).
    values.update(code=code, portal=current_app.config["PORTAL_NAME"], kind=item.kind,
                  host=urls.portal_host(), portal_url=urls.portal_url())
    if values.get("link_endpoint") and code:
        values["link"] = urls.absolute_url(values["link_endpoint"], token=code)
    text = render_template(f"messages/{template}_{item.channel}.txt", **values).strip() + "\n"
    subject, html = "", None
    if item.channel == "email":
        subject = render_template(f"messages/{template}_subject.txt", **values).strip()
        html = render_template(
            current_app.jinja_env.select_template(
                [f"messages/{template}_email.html", "messages/_text_email.html"]),
            subject=subject, text=text, **values)
    return subject, text, html


def clock_from_iso(value: str) -> datetime:
    return clock.as_utc(datetime.fromisoformat(value))


# --- channels -------------------------------------------------------------------------

# How long a connection to the mail server is kept open between messages. Opening one (TCP,
# greeting, EHLO, STARTTLS and login where set) costs more than sending a code over it; mail
# servers close idle clients themselves after a minute or more.
SMTP_REUSE_SECONDS = 30.0


@functools.cache
def _local_hostname() -> str:
    """This machine's name for EHLO, looked up once: smtplib would ask DNS on every connection."""
    return socket.getfqdn()


def tls_context() -> ssl.SSLContext:
    """How the mail server's certificate is checked: against the system's CAs (or the bundle
    SSL_CERT_FILE names), for MAIL_SERVER's name. smtplib's own default checks nothing, so a
    man in the middle would get MAIL_PASSWORD and every code. MAIL_CA_BUNDLE (tests only, like
    VONAGE_CA_BUNDLE) trusts one CA for the mail server alone."""
    return ssl.create_default_context(cafile=current_app.config.get("MAIL_CA_BUNDLE") or None)


class _Deadline:
    """For smtplib.SMTP and SMTP_SSL: one deadline (on time.monotonic()) for a whole hand-over.

    Each step (connecting, TLS, every command, every read of a reply) waits only for what is
    left of it, and none starts after it: a server slow at every step cannot stretch one
    message past MAIL_TIMEOUT, nor past its claim (see _deadline), where another process
    could send it again. Running out is a TimeoutError (an OSError), as a silent server's is.
    """

    def __init__(self, *args, deadline: float = math.inf, **kwargs) -> None:
        self.deadline = deadline
        super().__init__(*args, **kwargs)

    def left(self) -> float:
        """Seconds left before the deadline; TimeoutError once it has passed."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the time for this hand-over ran out")
        return left

    def _get_socket(self, host, port, timeout):
        return super()._get_socket(host, port, min(timeout, self.left()))

    def send(self, s):
        if self.sock is not None:
            self.sock.settimeout(self.left())  # sendall's timeout bounds the whole write
        super().send(s)

    def getreply(self):
        if self.file is None and self.sock is not None:
            self.file = io.BufferedReader(_ReplyReader(self))
        return super().getreply()


class _ReplyReader(io.RawIOBase):
    """The mail server's replies, each read waiting only for what is left of the deadline (a
    server trickling a reply byte by byte cannot outlast it either)."""

    def __init__(self, host: _Deadline) -> None:
        super().__init__()
        self.host = host

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        sock = self.host.sock  # after STARTTLS, the TLS socket
        if sock is None:
            raise OSError("the connection to the mail server is closed")
        sock.settimeout(self.host.left())
        return sock.recv_into(buffer)


class _SMTP(_Deadline, smtplib.SMTP):
    pass


class _SMTP_SSL(_Deadline, smtplib.SMTP_SSL):
    pass


class _TimedConnection(Connection):
    """Flask-Mail's connection, with a deadline for each hand-over so a slow or silent mail
    server cannot hold a message past MAIL_TIMEOUT, and TLS (MAIL_USE_SSL, MAIL_USE_TLS)
    that checks the server's certificate."""

    settings: tuple = ()  # the mail settings it was opened with (see _KeptConnections)

    def configure_host(self, deadline: Optional[float] = None):
        timeout = current_app.config["MAIL_TIMEOUT"]
        if deadline is None:  # Flask-Mail reconnecting by itself (MAIL_MAX_EMAILS)
            deadline = time.monotonic() + timeout
        if self.mail.use_ssl:
            host = _SMTP_SSL(self.mail.server, self.mail.port, timeout=timeout,
                             local_hostname=_local_hostname(), context=tls_context(),
                             deadline=deadline)
        else:
            host = _SMTP(self.mail.server, self.mail.port, timeout=timeout,
                         local_hostname=_local_hostname(), deadline=deadline)
        try:
            if self.mail.use_tls:
                host.starttls(context=tls_context())
            if self.mail.username and self.mail.password:
                host.login(self.mail.username, self.mail.password)
            elif self.mail.username or self.mail.password:
                _half_login_unused(self.mail.server)
        except BaseException:
            host.close()  # a certificate refused, a login refused: no socket left open
            raise
        return host


@functools.cache
def _half_login_unused(server: str) -> None:
    """Say once that half a login is not used (production allows it only for a relay on this
    machine, config.check_mail_settings)."""
    log.warning("Only one of MAIL_USERNAME and MAIL_PASSWORD is set: mail goes to %s without "
                "a login. Set both to log in, or remove the one that is set.", server)


class _KeptConnections:
    """Open connections to the mail server that the sender threads hand back after a message,
    for the next one to take (opening one is the dearest part of sending a code).

    One is reused only while the mail settings are the same, it has been idle under
    SMTP_REUSE_SECONDS, and the server still answers NOOP; so a message never goes out on a
    connection that may be dead, and one whose send failed is closed, never handed back."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[_TimedConnection, tuple, float]] = []  # (it, settings, since)

    def take(self, deadline: float) -> _TimedConnection:
        """A connection for one hand-over, which must be over by `deadline`."""
        mail = current_app.extensions["mail"]
        settings = (mail.server, mail.port, mail.use_ssl, mail.use_tls, mail.username,
                    mail.password, current_app.config["MAIL_TIMEOUT"],
                    current_app.config.get("MAIL_CA_BUNDLE"))
        while True:
            with self._lock:
                if not self._idle:
                    break
                connection, kept_for, idle_since = self._idle.pop()
            connection.host.deadline = deadline
            try:
                if kept_for == settings and time.monotonic() - idle_since < SMTP_REUSE_SECONDS \
                        and connection.host.noop()[0] == 250:
                    return connection
            except (OSError, smtplib.SMTPException):
                pass
            _close(connection)
        connection = _TimedConnection(mail)
        connection.host = connection.configure_host(deadline)
        connection.settings = settings
        return connection

    def give_back(self, connection: _TimedConnection) -> None:
        now = time.monotonic()
        with self._lock:
            # Those idle too long are closed here, not left until a busy spell reaches them.
            stale = [kept for kept in self._idle if now - kept[2] >= SMTP_REUSE_SECONDS]
            self._idle = [kept for kept in self._idle if now - kept[2] < SMTP_REUSE_SECONDS]
            self._idle.append((connection, connection.settings, now))
        for kept, _, _ in stale:
            _close(kept, connection.host.deadline)  # within the hand-over that found them

    def close_all(self) -> None:
        """Close the idle connections (the dispatcher stopping, or the process ending)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection, _, _ in idle:
            _close(connection, time.monotonic() + QUIT_SECONDS)


# How long a connection closed outside any hand-over may take to say QUIT.
QUIT_SECONDS = 2.0


def _close(connection: _TimedConnection, deadline: Optional[float] = None) -> None:
    """Say QUIT (by `deadline`, else the connection's own) and close the connection."""
    if deadline is not None:
        connection.host.deadline = deadline
    try:
        connection.host.quit()
    except (OSError, smtplib.SMTPException):
        connection.host.close()


kept_connections = _KeptConnections()
atexit.register(kept_connections.close_all)


# Flask-Mail's MIME parts and headers arrive encoded for the wire already (RFC 2047 words,
# base64 bodies); flattening them under the `email` package's compat32 policy writes them as
# they are, where its SMTP policy parses each header back and folds it again. compat32 is
# what Django's mail has always sent with; the bytes on the wire differ only in folding.
class _WirePolicy(email.policy.Compat32):
    """compat32 that writes a header needing no folding as it is. compat32 wraps every header
    in an `email.header.Header` and folds it, an eighth of the instructions of handing a code
    over; for a value in ASCII, on one line and short enough, Header writes it back unchanged."""

    def fold_binary(self, name, value):
        if (isinstance(value, str) and value.isascii() and "\n" not in value
                and "\r" not in value
                and (self.max_line_length is None
                     or len(name) + 2 + len(value) <= self.max_line_length)):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_WIRE = _WirePolicy(linesep="\r\n")


class _Message(Message):
    def as_bytes(self) -> bytes:
        message = self._message()
        message.policy = _WIRE
        for part in message.walk():
            if part.is_multipart():
                # A boundary of 128 random bits from `secrets`: no part's text holds it by
                # chance, and no one writing to the firm can know it in advance. Left unset,
                # the generator makes one with `random` and searches every part's text for
                # it with a regular expression compiled for each message.
                part.set_boundary(f"=_{secrets.token_hex(16)}")
        if self.subject and not self.subject.isascii():
            # As a Header, so that compat32 folds the encoded words after "Subject: ".
            message.replace_header("Subject", Header(self.subject, "utf-8",
                                                     header_name="Subject"))
        return message.as_bytes()


# What Flask-Mail raises for a message it cannot write (an address or header with no ASCII
# form, a line break in a header): sending it again would fail the same way.
UNWRITABLE = (ValueError, BadHeaderError, email.errors.MessageError)


def _recipient(item: Delivery) -> str:
    """The destination as the mail server must get it (see emails.ascii_address)."""
    try:
        return emails.ascii_address(item.destination)
    except ValueError as exc:
        raise DeliveryError(f"the address cannot be written for the mail server ({exc})",
                            permanent=True) from exc


@functools.lru_cache(maxsize=8)
def _id_domain(sender) -> str:
    """The domain of MAIL_DEFAULT_SENDER, for Message-ID: mail filters expect the sender's own
    domain there, and Python's default asks the system for this machine's name for every
    message ("localhost" on many servers)."""
    try:
        return emails.ascii_address(sender_address(sender)).rpartition("@")[2] or _local_hostname()
    except ValueError:
        return _local_hostname()


@functools.lru_cache(maxsize=8)
def _sender_pair(sender: str) -> tuple[str, str]:
    """MAIL_DEFAULT_SENDER as (name, address), read once. Flask-Mail reads an address given as
    text with `email.utils.parseaddr` (a tokenizer in Python) every time it writes it; given
    the pair, it writes it as it is. Recipients and the reply-to address go as pairs too."""
    return sender_pair(sender)


def send_email(item: Delivery, subject: str, text: str, html: Optional[str] = None, *,
               deadline: Optional[float] = None) -> HandedOver:
    """Hand an email (a plain-text part and, when given, an HTML part) to the SMTP server,
    all of it by `deadline` (time.monotonic(); MAIL_TIMEOUT from now if not given)."""
    started = time.monotonic()
    if deadline is None:
        deadline = started + current_app.config["MAIL_TIMEOUT"]
    message = _Message(subject=subject, recipients=[("", _recipient(item))], body=text,
                       html=html)
    message.msgId = make_msgid(domain=_id_domain(message.sender))
    # RFC 3834: an automatic message, to which out-of-office replies are not sent.
    message.extra_headers = {"Auto-Submitted": "auto-generated",
                             "X-ClientGate-Ref": item.client_ref or ""}
    reply_to = contact.address()  # a reply reaches the firm, if it gave an address
    message.reply_to = ("", reply_to) if reply_to else None
    try:
        connection = kept_connections.take(deadline)
        try:
            connection.send(message, envelope_from=_sender_pair(message.sender))
        except BaseException:
            _close(connection)  # a failed send: the next message gets a new connection
            raise
    except smtplib.SMTPRecipientsRefused as exc:
        raise _recipient_refusal(item, exc) from exc
    except smtplib.SMTPDataError as exc:
        policy = _policy_refusal(exc.smtp_code, exc.smtp_error)
        if policy is not None:
            raise _policy_logged(item, policy, exc.smtp_error) from exc
        # The message itself turned away (its content, its size): sent again, so would it be.
        permanent = 500 <= exc.smtp_code < 600
        raise DeliveryError(
            f"the mail server answered {exc.smtp_code}", permanent=permanent
        ) from exc
    except smtplib.SMTPResponseException as exc:
        raise _setup_refusal(item, exc) from exc
    except ssl.SSLCertVerificationError as exc:
        # Retried: the operator may put the right CA in place. Nothing was sent, no password.
        why = exc.verify_message or exc.reason
        raise DeliveryError(f"the mail server's certificate could not be verified ({why})") \
            from exc
    except (OSError, smtplib.SMTPException) as exc:
        if time.monotonic() >= deadline:
            # Cut short at the deadline: retried like a server that did not answer.
            allowed = max(1, round(deadline - started))
            raise DeliveryError(f"the mail server was too slow (not done within {allowed} "
                                f"second{'' if allowed == 1 else 's'})") from exc
        raise DeliveryError(f"the mail server could not be reached ({type(exc).__name__})") from exc
    except UNWRITABLE as exc:
        raise DeliveryError(
            f"the message could not be written for the mail server ({type(exc).__name__})",
            permanent=True) from exc
    kept_connections.give_back(connection)
    return HandedOver()


# An enhanced status code (RFC 3463) where RFC 2034 puts it, at the start of a reply line:
# "4.2.2 Mailbox full". Its subject and detail say what the basic code cannot.
_ENHANCED_CODE = re.compile(rb"^\s*([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])", re.MULTILINE)


def _enhanced_code(said) -> Optional[tuple[bytes, bytes, bytes]]:
    """A reply's enhanced status code as (class, subject, detail), where _ENHANCED_CODE finds
    one: b"5", b"2", b"2" for "552 5.2.2 Mailbox full"."""
    if isinstance(said, str):
        said = said.encode("utf-8", "replace")
    found = _ENHANCED_CODE.search(said or b"")
    return found.groups() if found is not None else None


def _code_words(code: int, enhanced: tuple[bytes, bytes, bytes]) -> str:
    """"552 5.2.2": a reply's basic and enhanced codes, as the recorded reasons give them."""
    return f"{code} {b'.'.join(enhanced).decode()}"


def _mailbox_full(code: int, said: bytes) -> Optional[str]:
    """The code words ("552 5.2.2", "452") of a recipient refused because the mailbox is
    full, else None. An enhanced code decides when there is one: X.2.2 is "mailbox full",
    while 452 4.5.3 (too many recipients) or 452 4.3.1 (the server's own disk) are not the
    client's mailbox. Without one, 452 ("insufficient storage") and 552 ("exceeded storage
    allocation") are how servers say it."""
    enhanced = _enhanced_code(said)
    if enhanced is not None:
        subject, detail = int(enhanced[1]), int(enhanced[2])
        return _code_words(code, enhanced) if (subject, detail) == (2, 2) else None
    return str(code) if code in (452, 552) else None


def _policy_refusal(code: int, said) -> Optional[str]:
    """The code words ("550 5.7.26") of a reply turning our email away under a mail server's
    security or policy rules, else None: a 5xx whose enhanced code (where _ENHANCED_CODE finds
    one) is of class 5 and subject 7 ("550-5.7.26 This mail is unauthenticated", "550 5.7.1
    Relaying denied", "550 5.7.708 Access denied", "5.7.509 DMARC").

    Such a refusal is final, at RCPT or at DATA: what it is about (SPF, DKIM, DMARC, the
    sending server's reputation, the relay's settings) is the firm's to mend and will not
    change within a code's 10 minutes, and sending the same message again and again to a
    server that called it unwanted only lowers that reputation further. A 4.7.X ("451 4.7.1
    Greylisted", "421 4.7.0 try again later") is a passing refusal, not this: None, so it is
    retried and worded as before."""
    if not 500 <= code < 600:
        return None
    enhanced = _enhanced_code(said)
    if enhanced is None or enhanced[0] != b"5" or int(enhanced[1]) != 7:
        return None
    return _code_words(code, enhanced)


# An email address in a mail server's reply ("5.7.1 <c@example.com>: Relay access denied"):
# left out of the operator's log, which needs the rule's words, not whose code it was.
_ADDRESS_IN_REPLY = re.compile(r"<?[^\s<>]+@[^\s<>]+>?")


def _policy_logged(item: Delivery, words: str, said) -> DeliveryError:
    """A policy refusal, failed for good, and logged at ERROR with what the operator should
    check: only they can mend it, and every client on that mail provider meets it."""
    said = said.decode("utf-8", "replace") if isinstance(said, bytes) else str(said or "")
    said = _ADDRESS_IN_REPLY.sub("<address>", said.replace("\n", " "))[:200]
    log.error("delivery %s: %s (%s: %s): check SPF, DKIM and DMARC for MAIL_DEFAULT_SENDER's "
              "domain, the sending server's reputation, and that MAIL_SERVER lets this login "
              "relay to other domains. Not retried.", item.id, POLICY_REFUSAL, words, said)
    return DeliveryError(f"{POLICY_REFUSAL} ({words})", permanent=True)


def _recipient_refusal(item: Delivery, exc: smtplib.SMTPRecipientsRefused) -> DeliveryError:
    """What a refused recipient means for the client and for retrying.

    A full mailbox is said as such and retried, a 552 too, until the code runs out (a notice,
    until NOTICE_GIVE_UP): the client can make room while support is on the phone with them,
    and then the code they are waiting for comes; mail servers keep trying a full mailbox for
    days; and RFC 5321 (4.5.3.1.10) asks clients to treat a 552 at RCPT as temporary (there,
    for its old use as "too many recipients"). A code lives 10 minutes, so that is a handful
    of tries with the backoff, not a flood. A mail server's security or policy rules (5.7.X,
    _policy_refusal) are said as such and final. Any other 5xx ("no such user", 550 5.1.1) is
    final; a 4xx (greylisting, 451 4.7.1 too) is retried."""
    refusals = list(exc.recipients.values())
    answers = [code for code, _ in refusals]
    full = [_mailbox_full(code, said) for code, said in refusals]
    if full and all(full):
        # No "refused" in these words: the support diagnosis reads that as a wrong address.
        return DeliveryError(f"{MAILBOX_FULL} ({', '.join(full)})")
    policy = [_policy_refusal(code, said) for code, said in refusals]
    if policy and all(policy):
        return _policy_logged(item, ", ".join(policy), refusals[0][1])
    permanent = bool(answers) and all(500 <= code < 600 for code in answers)
    return DeliveryError(
        f"{REFUSED_ADDRESS} ({', '.join(map(str, answers))})",
        permanent=permanent,
    )


# A refusal before the recipient is named is about this firm's mail settings, not the client's
# address: each kind, in words for the client and support (no "refused", which the support
# diagnosis reads as a wrong address), and what the operator should check.
_SETUP_REFUSALS = (
    (smtplib.SMTPAuthenticationError, "the mail server did not accept our login",
     "check MAIL_USERNAME and MAIL_PASSWORD"),
    (smtplib.SMTPSenderRefused, "the mail server did not accept our sender address",
     "check that the mail server lets this login send as MAIL_DEFAULT_SENDER"),
    (smtplib.SMTPResponseException, "the mail server turned the connection away",
     "check MAIL_SERVER, MAIL_PORT and the TLS setting"),
)


def _setup_refusal(item: Delivery, exc: smtplib.SMTPResponseException) -> DeliveryError:
    """A refusal at the greeting, STARTTLS, the login or MAIL FROM: retried (a 5xx too: the
    operator can mend the settings before the code runs out, and the client is shown a
    delay), and logged at ERROR with what to check."""
    reason, fix = next((reason, fix) for kind, reason, fix in _SETUP_REFUSALS
                       if isinstance(exc, kind))
    said = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) \
        else str(exc.smtp_error)
    log.error("delivery %s: %s (%s %s): %s. Messages are retried until their time runs out.",
              item.id, reason, exc.smtp_code, said.replace("\n", " ")[:200], fix)
    return DeliveryError(f"{reason} ({exc.smtp_code})")


def _send_sms(item: Delivery, subject: str, text: str, *,
              deadline: Optional[float] = None) -> HandedOver:
    from services.delivery import sms

    # A code is of no use after its give-up moment (its expiry), and Vonage would otherwise
    # keep trying a phone that is off for 72 hours.
    valid_for = None
    if item.kind in CODE_KINDS and item.give_up_at is not None:
        valid_for = clock.as_utc(item.give_up_at) - clock.now()
    parts = sms.send_sms(item.destination, text, client_ref=item.client_ref,
                         valid_for=valid_for, deadline=deadline)
    return HandedOver(parts[0], parts if len(parts) > 1 else ())


def channel_configured(channel: str, config=None) -> bool:
    config = config or current_app.config
    if channel == "email":
        return bool(config.get("MAIL_SERVER"))
    return bool(config.get("VONAGE_API_KEY") and config.get("VONAGE_API_SECRET"))


def sms_offered(config=None) -> bool:
    """Whether codes may go by text message: Vonage is set up, or (development and tests
    only) texts go to the console. Production without Vonage sends SMS clients email."""
    config = config or current_app.config
    return channel_configured("sms", config) or bool(config.get("OUTBOX_WITHOUT_SERVER"))


def missing_settings(config=None) -> dict[str, list[str]]:
    """Per channel, the settings it lacks (for /healthz and the start-up warning)."""
    config = config or current_app.config
    missing = {
        "email": [] if config.get("MAIL_SERVER") else ["MAIL_SERVER"],
        "sms": [name for name in ("VONAGE_API_KEY", "VONAGE_API_SECRET")
                if not config.get(name)],
    }
    return {channel: names for channel, names in missing.items() if names}


def _send_to_outbox(item: Delivery, subject: str, text: str) -> HandedOver:
    """No server configured for this channel: print it and keep it for /dev/outbox."""
    outbox = current_app.extensions.setdefault("dev_outbox", deque(maxlen=100))
    outbox.appendleft({
        "at": clock.now(), "channel": item.channel, "to": item.destination,
        "subject": subject, "text": text,
    })
    print(f"\n--- {item.channel} to {item.destination} (development outbox) ---\n"
          f"{subject + chr(10) if subject else ''}{text}--- end ---\n", flush=True)
    return HandedOver("outbox")


def handover_seconds(channel: str, config=None) -> float:
    """How long one hand-over on `channel` may take in all: MAIL_TIMEOUT for an email,
    VONAGE_TIMEOUT for a text (config.check_claim_time weighs the claim against them)."""
    config = config or current_app.config
    return float(config["MAIL_TIMEOUT"] if channel == "email" else config["VONAGE_TIMEOUT"])


def hand_over(item: Delivery, subject: str, text: str, html: Optional[str] = None, *,
              deadline: Optional[float] = None) -> HandedOver:
    """Send through the channel's transport, by `deadline` (time.monotonic(); the channel's
    own time from now if not given); returns what the provider said of it."""
    if not channel_configured(item.channel):
        if not current_app.config.get("OUTBOX_WITHOUT_SERVER"):
            # Production: never print a message (it may hold a code) in place of sending it.
            raise DeliveryError(
                "no mail server is set up" if item.channel == "email"
                else "text messages are not set up", permanent=True)
        return _send_to_outbox(item, subject, text)
    if item.channel == "email":
        return send_email(item, subject, text, html, deadline=deadline)
    return _send_sms(item, subject, text, deadline=deadline)


# --- the dispatcher -------------------------------------------------------------------

def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_lease() -> timedelta:
    """How long a claim lasts: DISPATCHER_CLAIM_SECONDS, or CLAIM_LEASE."""
    seconds = current_app.config.get("DISPATCHER_CLAIM_SECONDS")
    return timedelta(seconds=seconds) if seconds else CLAIM_LEASE


def _deadline(item: Delivery) -> float:
    """When the hand-over of this claimed message must be over, on time.monotonic(): after
    its channel's time (handover_seconds), and never later than two thirds into its claim.
    The last third is left to record the result before another process may claim the message
    (and for servers' clocks a little apart); the start check makes the claim at least three
    times the channel's time, so a hand-over begun at once gets all of it."""
    seconds = handover_seconds(item.channel)
    if item.claimed_until is not None:
        claim_left = clock.as_utc(item.claimed_until) - clock.now() - claim_lease() / 3
        seconds = min(seconds, claim_left.total_seconds())
    return time.monotonic() + seconds


def claim_due(limit: int = 20, worker: Optional[str] = None) -> list[int]:
    """Claim up to `limit` due messages for this worker; each row goes to one worker only."""
    worker = worker or worker_name()
    at = clock.now()
    claim = {"at": at, "worker": worker, "until": at + claim_lease()}
    # The first claim commits in the read's transaction (2 round trips fewer on PostgreSQL):
    # the read locks nothing, and each claim's UPDATE asks again that the row is still due,
    # so a message another worker claimed meanwhile is skipped (rowcount 0), never shared.
    candidates = db.session.connection().execute(
        _DUE_MESSAGES, {"at": at, "limit": limit}).all()
    claimed = []
    for delivery_id, kind, attempts, give_up_at, last_error in candidates:
        # Its time ran out: tried before (a send cut short), or a code never tried while the
        # server was stopped or before a backup was restored (a number's check, over). A code
        # with a PREPARER is left to it, which ends it in words of its own (the sign-in over);
        # a notice is still worth sending late: it tells of something that happened.
        if give_up_at is not None and clock.as_utc(give_up_at) <= at \
                and (attempts or (kind in CODE_KINDS and kind not in PREPARERS)):
            _give_up(delivery_id, attempts, last_error, at)
            continue
        result = db.session.connection().execute(_CLAIM, {**claim, "delivery": delivery_id})
        db.session.commit()
        if result.rowcount == 1:
            claimed.append(delivery_id)
    return claimed


# The dispatcher's statements, built once: it asks them for every message, and building a
# statement anew costs more than running it. `at` is the round's clock.
_messages = Delivery.__table__
_DUE_NOW = (
    _messages.c.status.in_(("queued", "sending")),
    _messages.c.next_attempt_at <= bindparam("at"),
    or_(_messages.c.claimed_until.is_(None), _messages.c.claimed_until < bindparam("at")),
)
_DUE_MESSAGES = (
    select(_messages.c.id, _messages.c.kind, _messages.c.attempts, _messages.c.give_up_at,
           _messages.c.last_error)
    .where(*_DUE_NOW).order_by(_messages.c.next_attempt_at).limit(bindparam("limit"))
)
_CLAIM = (
    update(_messages).where(_messages.c.id == bindparam("delivery"), *_DUE_NOW)
    .values(status="sending", claimed_by=bindparam("worker"), claimed_until=bindparam("until"),
            attempts=_messages.c.attempts + 1)
    .execution_options(**db_setup.ALONE)  # committed at once: one round trip on PostgreSQL
)
_GIVE_UP = (
    update(_messages)
    .where(_messages.c.id == bindparam("delivery"), _messages.c.attempts == bindparam("tried"),
           *_DUE_NOW)
    .values(status="failed", failed_at=bindparam("at"), last_error=bindparam("reason"),
            code_encrypted=None, claimed_until=None)
)
# Only while the claim is still this process's (the claim's worker and attempt): one that ran
# out and was taken by another process is that process's to record.
_SENT = (
    update(_messages)
    .where(_messages.c.id == bindparam("delivery"), _messages.c.claimed_by == bindparam("worker"),
           _messages.c.attempts == bindparam("attempt"))
    .values(status="sent", sent_at=bindparam("at"), provider_ref=bindparam("ref"),
            provider_parts=bindparam("parts"), code_encrypted=None, claimed_until=None)
)


def _give_up(delivery_id: int, attempts: int, last_error: Optional[str], at: datetime) -> None:
    """Fail a message whose time ran out, rather than claim it again: a send cut short (a
    process killed, an error nobody expected) leaves it `sending`, and it must not be claimed
    each lease for ever, shown as "Being sent now", its code kept; a code never tried would
    arrive after its check had ended."""
    reason = (f"{last_error or 'sending was interrupted'}; the time to send it ran out"
              if attempts else "its time ran out before it could be sent (the server was "
                               "stopped, or its database restored from a backup)")
    result = db.session.connection().execute(_GIVE_UP, {
        "delivery": delivery_id, "tried": attempts, "at": at, "reason": reason[:500]})
    if result.rowcount == 1:  # else another worker claimed or ended it meanwhile
        item = db.session.get(Delivery, delivery_id)
        audit.record("delivery_failed", user_id=item.user_id, sign_in_id=item.sign_in_id,
                     delivery_id=item.id, outcome="failed",
                     detail={"channel": item.channel, "reason": item.last_error,
                             "attempts": item.attempts})
    db.session.commit()


def _backoff(attempts: int) -> timedelta:
    return timedelta(seconds=BACKOFF_SECONDS[min(attempts, len(BACKOFF_SECONDS)) - 1])


def _retry_or_fail(item: Delivery, reason: str, *, permanent: bool) -> None:
    """Queue a claimed message again after its backoff, or fail it when retrying cannot help
    or the next attempt would come after give_up_at."""
    retry_at = clock.now() + _backoff(item.attempts)
    if permanent or retry_at > (item.give_up_at or clock.now()):
        _fail(item, reason)
        return
    item.status = "queued"
    item.last_error = reason[:500]
    item.next_attempt_at = retry_at
    item.claimed_until = None
    audit.record("delivery_retry", user_id=item.user_id, sign_in_id=item.sign_in_id,
                 delivery_id=item.id, outcome="retrying",
                 detail={"channel": item.channel, "reason": item.last_error,
                         "attempts": item.attempts,
                         "next_attempt_at": item.next_attempt_at.isoformat()})


def _fail(item: Delivery, reason: str) -> None:
    item.status = "failed"
    item.failed_at = clock.now()
    item.last_error = reason[:500]
    item.code_encrypted = None
    item.claimed_until = None
    audit.record("delivery_failed", user_id=item.user_id, sign_in_id=item.sign_in_id,
                 delivery_id=item.id, outcome="failed",
                 detail={"channel": item.channel, "reason": item.last_error,
                         "attempts": item.attempts})


# A message comes with its sign-in: a code's PREPARER asks whether the sign-in still waits.
# Built once, not as session.get's options for every message.
_MESSAGE_WITH_SIGN_IN = (select(Delivery).options(joinedload(Delivery.sign_in))
                         .where(Delivery.id == bindparam("delivery")))


def process(delivery_id: int) -> str:
    """Send one claimed message and record what happened; returns its new status ("claim
    lost" if it was sent after another process had claimed it)."""
    item = db.session.scalar(_MESSAGE_WITH_SIGN_IN, {"delivery": delivery_id})
    if item is None:
        return "missing"
    if item.kind in PREPARERS:
        # Work the request left to the dispatcher (it must not show in the request's time),
        # or the last word on whether the message is still wanted.
        reason = PREPARERS[item.kind](item)
        if reason:
            item.status, item.code_encrypted, item.last_error = "cancelled", None, reason[:500]
            item.claimed_until = None
            db.session.commit()
            return "cancelled"  # not item.status: after the commit, that would read the row again
        db.session.flush()  # what it filled in is committed with the rest, below
    code = keys.decrypt_secret(item.code_encrypted) if item.code_encrypted else None
    needs_secret = item.kind in CODE_KINDS or bool(
        ((item.payload or {}).get("values") or {}).get("link_endpoint"))
    if needs_secret and code is None:
        # Kept under an earlier SECRET_KEY (or damaged): no retry can read it. Support's
        # timeline says what to do about it, the operator's log why such messages fail.
        what = "code" if item.kind in CODE_KINDS else "link"
        then = ("adding the number again sends a new code" if item.kind == "phone_proof"
                else "signing in again sends a new code" if what == "code"
                else "a new link is needed: send it again")
        log.warning("delivery %s: its %s was kept under another SECRET_KEY and cannot be read "
                    "back, so it is not sent (was SECRET_KEY changed?)", item.id, what)
        _fail(item, f"its {what} was kept under the server's earlier secret key (SECRET_KEY "
                    f"was changed) and cannot be read back; {then}")
        db.session.commit()
        return "failed"
    attempt = item.attempts
    try:
        subject, text, html = render(item, code)
        deadline = _deadline(item)
        if deadline <= time.monotonic():  # claimed long before its turn came (a busy process)
            raise DeliveryError("its claim ran out before it could be sent")
        # Let go of the database while the mail server or Vonage takes its time: the row
        # stays claimed, and a slow server must not hold a connection open per message.
        db.session.expunge(item)
        db.session.commit()
        handed = hand_over(item, subject, text, html, deadline=deadline)
    except DeliveryError as exc:
        db.session.rollback()
        # Held from the check to the retry's commit: a claim another server takes meanwhile
        # (this one's ran out) waits, then finds the message queued for later, not claimed.
        item = db.session.get(Delivery, delivery_id, with_for_update=True)
        if not _claim_held(item, attempt):
            # Ended while it was being handed over (its sign-in over, its code wiped), or
            # claimed again by another sender: queueing it again would bring it back.
            status = item.status if item else "missing"
            db.session.rollback()  # nothing to write: end the read
            log.info("delivery %s: not handed over (%s); left %s", delivery_id, exc.reason,
                     status)
            return status
        _retry_or_fail(item, exc.reason, permanent=exc.permanent)
        status = item.status
        db.session.commit()
        return status
    # Handed over: the send must be recorded, or the message goes again when its claim runs
    # out. A database away for a moment (a restart, a failover, SQLite's lock held by a
    # backup) is waited out while the claim lasts.
    for tries in itertools.count():
        try:
            return _record_sent(item, handed, attempt)
        except Exception as error:
            db.session.rollback()
            claim_left = (clock.as_utc(item.claimed_until) - clock.now()).total_seconds() \
                if item.claimed_until is not None else 0
            if not db_setup.database_away(error) or claim_left < RECORD_AGAIN_SECONDS:
                raise
            if not tries:
                log.warning("delivery %s: handed over, but the database is away; recording "
                            "the send when it answers", delivery_id)
            time.sleep(RECORD_AGAIN_SECONDS)


# How long to wait before recording a send again while the database is away.
RECORD_AGAIN_SECONDS = 1.0


def _record_sent(item: Delivery, handed: HandedOver, attempt: int) -> str:
    """Mark a handed-over message sent, if this process still holds its claim, with the trail's
    event; commits. One UPDATE by id and claim: `item` (let go of by `process`) still holds
    what the audit event needs."""
    recorded = db.session.connection().execute(_SENT, {
        "delivery": item.id, "at": clock.now(), "ref": handed.ref,
        "parts": dict.fromkeys(handed.parts, "sent") or None,
        "worker": worker_name(), "attempt": attempt}).rowcount == 1
    detail = {"channel": item.channel, "attempts": item.attempts,
              "transport": "outbox" if handed.ref == "outbox" else item.channel}
    if not recorded:
        # The claim ran out and another process took the message (a pause the deadline
        # could not cut short: the process stopped, the database slow to answer): it may
        # arrive twice. Said in the trail and the log; the row is the other process's.
        detail["claim_lost"] = True
        log.warning("delivery %s: handed over after its claim ran out; another process had "
                    "claimed it, so it may arrive twice", item.id)
    audit.record("delivery_sent", user_id=item.user_id, sign_in_id=item.sign_in_id,
                 delivery_id=item.id, outcome="sent", detail=detail)
    db.session.commit()
    return "sent" if recorded else "claim lost"


def _claim_held(item: Optional[Delivery], attempt: Optional[int] = None) -> bool:
    """Whether this process still holds its claim on the message: still `sending`, claimed
    by this process and, given the attempt it claimed, not claimed again since."""
    return (item is not None and item.status == "sending" and item.claimed_by == worker_name()
            and (attempt is None or item.attempts == attempt))


def process_safely(delivery_id: int) -> None:
    """`process`, where an unexpected error is logged and the message retried with backoff,
    or failed once its time or UNEXPECTED_ERROR_ATTEMPTS run out: never left `sending`."""
    try:
        process(delivery_id)
    except Exception as exc:  # one bad message must not stop the others
        db.session.rollback()
        log.exception("delivery %s: unexpected error", delivery_id)
        try:
            _after_unexpected_error(delivery_id, exc)
        except Exception:
            db.session.rollback()
            log.exception("delivery %s: its state could not be recorded; it is tried again "
                          "when its claim runs out", delivery_id)


def _after_unexpected_error(delivery_id: int, exc: Exception) -> None:
    """Record an unexpected error as a failed attempt, if this process still holds the claim
    (a send that was recorded, or a claim another process took over, is left alone)."""
    item = db.session.get(Delivery, delivery_id, with_for_update=True)  # as `process` does
    if not _claim_held(item):
        db.session.rollback()  # let the row go
        return
    reason = f"an unexpected error while sending ({type(exc).__name__})"
    _retry_or_fail(item, reason, permanent=item.attempts >= UNEXPECTED_ERROR_ATTEMPTS)
    db.session.commit()


def run_once(limit: int = 20, send: Optional[Callable[[int], None]] = None,
             sweep: bool = True) -> int:
    """One round: the SWEEPS (unless `sweep` is False), then send what is due, here or by
    `send(id)`. Returns messages handled."""
    for tidy_up in SWEEPS if sweep else ():
        if tidy_up():
            db.session.commit()
    handled = 0
    for delivery_id in claim_due(limit):
        (send or process_safely)(delivery_id)
        handled += 1
    return handled


def beat(worker: Optional[str] = None) -> None:
    """Record that this process's dispatcher is alive."""
    worker = worker or worker_name()
    row = db.session.get(DispatcherBeat, worker)
    if row is None:
        db.session.add(DispatcherBeat(worker=worker, beat_at=clock.now()))
    else:
        row.beat_at = clock.now()
    db.session.commit()


class Dispatcher:
    """A daemon thread per app process that claims queued messages and hands each to one of
    DISPATCHER_SENDERS sender threads, so that a mail server taking seconds per message
    delays that message, not every message queued behind it."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.last_round_at = None
        self.senders = max(1, int(app.config.get("DISPATCHER_SENDERS", 1)))
        self._pool: Optional[ThreadPoolExecutor] = None
        self._lock = threading.Lock()
        self._sending = 0

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        if self.alive:
            return
        self._stop.clear()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.senders, thread_name_prefix="clientgate-sender")
        self._thread = threading.Thread(target=self._loop, name="clientgate-dispatcher",
                                        daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        if self._pool is not None:
            # Messages being handed over finish (each within MAIL_TIMEOUT) and are recorded.
            self._pool.shutdown(wait=True)
            self._pool = None
        kept_connections.close_all()

    def _submit(self, delivery_id: int) -> None:
        with self._lock:
            self._sending += 1
        self._pool.submit(self._send, delivery_id)

    def _send(self, delivery_id: int) -> None:
        """On a sender thread: one message, in its own app context and database session."""
        try:
            with self.app.app_context():
                try:
                    process_safely(delivery_id)
                finally:
                    db.session.remove()
        finally:
            with self._lock:
                was_full = self._sending >= self.senders
                self._sending -= 1
            if was_full:
                self._wake.set()  # messages may be waiting for this sender: claim them now

    def wake(self) -> None:
        self._wake.set()

    def _loop(self) -> None:
        poll = self.app.config["DISPATCHER_POLL_SECONDS"]
        last_beat = last_sweep = None
        away = False  # the database could not be reached at the last round: said once
        while not self._stop.is_set():
            self._wake.clear()
            busy = False
            with self._lock:
                free = self.senders - self._sending
            batch = min(20, free)
            with self.app.app_context():
                try:
                    # Only a full batch means more may be due now; else sleep until woken.
                    # A wake-up per queued message must not mean a sweep per message: the
                    # sweep runs once a poll interval. (Pages check a sign-in's expiry
                    # themselves; the sweep only tidies up those nobody looks at.)
                    sweep = last_sweep is None or clock.now() - last_sweep >= timedelta(
                        seconds=poll)
                    if sweep:
                        last_sweep = clock.now()
                    busy = free > 0 and run_once(batch, send=self._submit, sweep=sweep) >= batch
                    if last_beat is None or clock.now() - last_beat >= HEARTBEAT_EVERY:
                        beat()
                        last_beat = clock.now()
                    self.last_round_at = clock.now()
                    if away:
                        away = False
                        log.warning("dispatcher: the database answers again; sending what "
                                    "waited")
                except Exception as error:
                    _let_go(db.session.rollback)
                    if not db_setup.database_away(error):
                        log.exception("dispatcher round failed; trying again shortly")
                    elif not away:
                        # A restart or a backup's lock: one line, not a traceback a round.
                        away = True
                        why = (str(getattr(error, "orig", None) or error).strip().splitlines()
                               or [""])[0][:300]
                        log.warning("dispatcher: the database cannot be reached (%s: %s); "
                                    "messages wait, and go out once it answers",
                                    type(error).__name__, why)
                finally:
                    _let_go(db.session.remove)
            if not busy:
                self._wake.wait(poll)


def _let_go(end: Callable[[], None]) -> None:
    """End a session's work after a failed round; a connection the database already dropped
    may fail to end, and must not take the dispatcher's thread with it."""
    try:
        end()
    except Exception:  # noqa: BLE001 - the pool replaces the connection at its next checkout
        pass


@event.listens_for(db.session, "after_commit")
def _wake_on_commit(session) -> None:
    """A commit that queued a message wakes this process's dispatcher at once."""
    if session.info.pop("wake_dispatcher", False) and has_app_context():
        dispatcher = current_app.extensions.get("dispatcher")
        if dispatcher is not None:
            dispatcher.wake()


def init_app(app: Flask) -> Dispatcher:
    """Attach a dispatcher to the app (started by create_app where it should run)."""
    dispatcher = Dispatcher(app)
    app.extensions["dispatcher"] = dispatcher
    return dispatcher


def pending_count() -> int:
    """Messages waiting to be sent, for /healthz."""
    return db.session.scalar(
        select(func.count(Delivery.id)).where(Delivery.status.in_(("queued", "sending")))
    ) or 0

