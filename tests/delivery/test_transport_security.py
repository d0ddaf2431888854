"""What reaches the mail server, and only it: a certificate checked before the password goes,
the address the client typed (not one IDNA 2003 makes of it), and no message stuck `sending`.

A real aiosmtpd server throughout, with STARTTLS or TLS from the first byte, its certificate
from a `trustme` CA that the system does not trust unless a test says so.
"""

from __future__ import annotations

import ssl
from datetime import timedelta
from typing import Optional

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from email_validator import validate_email
from sqlalchemy import select

from extensions import db
from models import Delivery, Event, User
from services import clock, delivery
from services.delivery.handover import DeliveryError
from services.emails import NOT_SENDABLE, ascii_address, email_problem
from services.signin import codes
from tests.conftest import Browser, SMTPServer, _Handler, add_user, make_config, running_app

MAIL_USER, MAIL_PASSWORD = "portal@firm.example", "real-mail-password"


# --- a mail server speaking TLS -------------------------------------------------------------

class TLSSMTPServer(SMTPServer):
    """The tests' SMTP server with TLS (STARTTLS required, or from the first byte) and a
    login, recording every login it is given."""

    def __init__(self, ca: trustme.CA, name: str = "127.0.0.1", implicit: bool = False):
        super().__init__()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert(name).configure_cert(self.context)
        self.implicit = implicit
        self.logins: list[tuple[bytes, bytes]] = []

    def _authenticate(self, server, session, envelope, mechanism, auth_data):
        self.logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    def start(self) -> None:
        # aiosmtpd offers AUTH "only over TLS" after STARTTLS alone; from the first byte, the
        # whole connection is TLS anyway.
        tls = ({"ssl_context": self.context, "auth_require_tls": False} if self.implicit
               else {"tls_context": self.context, "require_starttls": True,
                     "auth_require_tls": True})
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      authenticator=self._authenticate, **tls)
        self._controller.start()


@pytest.fixture
def ca(tmp_path):
    """A CA nobody trusts, and the file that would trust it."""
    authority = trustme.CA()
    authority.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    authority.path = str(tmp_path / "ca.pem")
    return authority


@pytest.fixture
def system_store(monkeypatch):
    """The system's CAs, as on a server: whatever this machine has, never the test CA."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)


def tls_app(tmp_path, server: TLSSMTPServer, **overrides):
    tls = {"MAIL_USE_SSL": True} if server.implicit else {"MAIL_USE_TLS": True}
    return running_app(make_config(tmp_path, server, MAIL_USERNAME=MAIL_USER,
                                   MAIL_PASSWORD=MAIL_PASSWORD, **tls, **overrides))


def sign_in_and_deliver(app, email: str = "client@example.com") -> Browser:
    add_user(app, email)
    b = Browser(app)
    assert b.log_in(email).status_code == 302
    run(app)
    return b


def run(app) -> int:
    with app.app_context():
        return delivery.run_once()


def only_delivery(app) -> Delivery:
    with app.app_context():
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        db.session.expunge_all()
    assert len(rows) == 1, rows
    return rows[0]


def assert_nothing_reached(server: TLSSMTPServer) -> None:
    assert server.messages == [] and server.logins == []


# --- 1. the certificate is checked before anything is sent ---------------------------------

@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_an_untrusted_certificate_gets_neither_the_password_nor_the_code(
        tmp_path, ca, system_store, implicit):
    server = TLSSMTPServer(ca, implicit=implicit)
    server.start()
    try:
        with tls_app(tmp_path, server) as app:
            b = sign_in_and_deliver(app)
            assert_nothing_reached(server)
            item = only_delivery(app)
            assert item.status == "queued" and item.attempts == 1  # retried, not dropped
            assert item.last_error.startswith("the mail server's certificate could not be "
                                              "verified (unable to get local issuer certificate")
            page = b.text("/login/code")
            assert "we are trying again" in page and "Being sent now" not in page
    finally:
        server.stop()


def test_a_certificate_for_another_name_is_refused(tmp_path, ca, system_store):
    server = TLSSMTPServer(ca, name="mail.elsewhere.example")
    server.start()
    try:
        with tls_app(tmp_path, server, MAIL_CA_BUNDLE=ca.path) as app:
            sign_in_and_deliver(app)
            assert_nothing_reached(server)
            assert "mismatch, certificate is not valid for '127.0.0.1'" in \
                only_delivery(app).last_error
    finally:
        server.stop()


def test_the_ca_trusted_through_the_system_store_delivers_over_starttls(
        tmp_path, ca, monkeypatch, system_store):
    """SSL_CERT_FILE, the standard way to name the CAs OpenSSL trusts, is honoured: a retry
    once the operator has put the right CA in place goes through."""
    server = TLSSMTPServer(ca)
    server.start()
    try:
        with tls_app(tmp_path, server) as app:
            sign_in_and_deliver(app)
            assert_nothing_reached(server)
            monkeypatch.setenv("SSL_CERT_FILE", ca.path)
            with app.app_context():
                trusted = delivery.tls_context().get_ca_certs()
            names = [dict(pair[0] for pair in cert["subject"])["organizationName"]
                     for cert in trusted]
            assert len(names) == 1 and names[0].startswith("trustme")
            clock.advance(timedelta(seconds=10))  # past the first backoff
            run(app)
            mail = server.wait_for(1)[0]
            assert mail.to == ["client@example.com"] and len(mail.code) == 6
            assert server.logins == [(MAIL_USER.encode(), MAIL_PASSWORD.encode())]
            assert only_delivery(app).status == "sent"
    finally:
        server.stop()


@pytest.mark.parametrize("implicit", [False, True], ids=["starttls", "tls"])
def test_a_ca_bundle_for_the_mail_server_alone_delivers(tmp_path, ca, system_store, implicit):
    server = TLSSMTPServer(ca, implicit=implicit)
    server.start()
    try:
        with tls_app(tmp_path, server, MAIL_CA_BUNDLE=ca.path) as app:
            sign_in_and_deliver(app)
            assert server.wait_for(1)[0].code
            assert server.logins == [(MAIL_USER.encode(), MAIL_PASSWORD.encode())]
            assert only_delivery(app).status == "sent"
    finally:
        server.stop()


# --- 2. the address the client typed, as the mail server must get it ------------------------

def test_a_sharp_s_domain_gets_its_own_a_label_not_strasse(app, smtp, deliver):
    """straße.de is xn--strae-oqa.de (IDNA 2008, what the form checked); IDNA 2003 would make
    it strasse.de, somebody else's domain."""
    address = "anna@straße.de"
    assert email_problem(address) is None
    add_user(app, address)
    b = Browser(app)
    assert b.log_in(address).status_code == 302
    deliver()
    mail = smtp.wait_for(1)[0]
    assert mail.to == ["anna@xn--strae-oqa.de"]
    assert mail.headers["To"] == "anna@xn--strae-oqa.de"
    assert b.enter_code(mail.code).status_code == 302  # the code works


def test_a_reset_link_for_a_sharp_s_domain_goes_to_that_domain(app, smtp, deliver):
    add_user(app, "anna@straße.de")
    Browser(app).post("/password/forgot", {"email": "anna@straße.de"})
    deliver()
    assert smtp.wait_for(1)[0].to == ["anna@xn--strae-oqa.de"]


def test_a_right_to_left_domain_is_sent_not_left_sending(app, smtp, deliver):
    """Python's IDNA 2003 codec refuses א1.com (Flask-Mail raised UnicodeError); IDNA 2008
    has a form for it."""
    add_user(app, "x@\u05d01.com")
    Browser(app).post("/password/forgot", {"email": "x@\u05d01.com"})
    deliver()
    assert smtp.wait_for(1)[0].to == ["x@xn--1-zhc.com"]


@pytest.mark.parametrize("address", ["anna@straße.de", "x@\u05d01.com", "jo@Bücher.DE",
                                     "le@ÉCOLE.fr", "a@例え.jp", "b@faß.example.co.uk"])
def test_what_the_form_accepts_is_sent_where_email_validator_checked(address):
    assert email_problem(address) is None
    written = ascii_address(address)
    assert written.isascii()
    checked = validate_email(address, check_deliverability=False, allow_smtputf8=False)
    assert written == checked.ascii_email


def test_an_ascii_address_is_handed_over_as_stored():
    assert ascii_address("Client.Name+tag@Example.COM") == "Client.Name+tag@Example.COM"


@pytest.mark.parametrize("address", ["anna.müller@example.com", "a@-x.\u05d0", "straße.de"])
def test_an_address_with_no_ascii_form_fails_at_once_and_sends_nothing(app, smtp, address):
    """An address stored before the form's rule (or by hand): a permanent failure, a reason
    a person can read, nothing sent."""
    if "@" in address and not address.split("@")[0].isascii():
        assert email_problem(address) == NOT_SENDABLE  # the form refuses it, for this reason
    with app.app_context():
        delivery.queue_message(user_id=None, channel="email", destination=address, kind="notice",
                               template="lockout", values={})
        db.session.commit()
    assert run(app) == 1
    item = only_delivery(app)
    assert item.status == "failed" and item.attempts == 1
    assert item.last_error.startswith("the address cannot be written for the mail server")
    assert smtp.messages == []


def test_a_line_break_in_an_address_is_a_permanent_failure(app, smtp):
    with app.app_context():
        delivery.queue_message(user_id=None, channel="email", kind="notice", template="lockout",
                               destination="a@example.com\r\nBcc: b@example.com", values={})
        db.session.commit()
    run(app)
    item = only_delivery(app)
    assert item.status == "failed"
    assert item.last_error == "the message could not be written for the mail server " \
                              "(BadHeaderError)"
    assert smtp.messages == []


# --- 3. an error nobody expected never leaves a message `sending` ---------------------------

def boom(*args, **kwargs):
    raise RuntimeError("a bug in the hand-over")


def lease(app) -> timedelta:
    with app.app_context():
        return delivery.claim_lease()


def reset_link_requested(app, smtp, deliver) -> Delivery:
    add_user(app, "client@example.com")
    Browser(app).post("/password/forgot", {"email": "client@example.com"})
    return only_delivery(app)


def test_an_unexpected_error_is_retried_then_failed_with_its_link_wiped(
        app, smtp, deliver, monkeypatch, caplog):
    reset_link_requested(app, smtp, deliver)
    monkeypatch.setattr(delivery, "hand_over", boom)
    deliver()
    item = only_delivery(app)
    assert item.status == "queued" and item.claimed_until is None  # not left `sending`
    assert item.last_error == "an unexpected error while sending (RuntimeError)"
    assert item.code_encrypted is not None  # the link, for the retry
    assert "a bug in the hand-over" in caplog.text  # the log has the details, the page not
    # Past the claim and past give_up_at (the link's hour): failed, the link wiped.
    clock.advance(lease(app) + timedelta(hours=2))
    assert deliver() == 0
    item = only_delivery(app)
    assert item.status == "failed" and item.code_encrypted is None
    assert item.last_error == ("an unexpected error while sending (RuntimeError); the time to "
                               "send it ran out")
    assert item.attempts == 1 and smtp.messages == []


def test_a_send_cut_short_is_failed_when_its_time_runs_out_not_claimed_for_ever(
        app, smtp, deliver, monkeypatch):
    """The worst case: the error, and then recording it, fail (the database gone), so the row
    stays `sending` with its claim; once the claim and give_up_at are past it fails."""
    reset_link_requested(app, smtp, deliver)
    monkeypatch.setattr(delivery, "hand_over", boom)
    monkeypatch.setattr(delivery, "_after_unexpected_error", boom)
    deliver()
    assert only_delivery(app).status == "sending"
    clock.advance(lease(app) + timedelta(seconds=1))
    deliver()  # claimed again once the lease ran out, while its time lasts
    assert only_delivery(app).attempts == 2
    clock.advance(timedelta(hours=2))
    deliver()
    item = only_delivery(app)
    assert item.status == "failed" and item.code_encrypted is None and item.attempts == 2
    assert item.last_error == "sending was interrupted; the time to send it ran out"


def test_an_error_that_repeats_fails_the_message_after_a_few_attempts(
        app, smtp, deliver, monkeypatch):
    with app.app_context():
        delivery.queue_message(user_id=None, channel="email", destination="a@example.com",
                               kind="notice", template="lockout", values={})
        db.session.commit()
    monkeypatch.setattr(delivery, "hand_over", boom)
    for _ in range(delivery.UNEXPECTED_ERROR_ATTEMPTS):
        assert only_delivery(app).status == "queued"
        deliver()
        clock.advance(timedelta(minutes=6))  # past any backoff, well before give_up_at
    item = only_delivery(app)
    assert item.status == "failed" and item.attempts == delivery.UNEXPECTED_ERROR_ATTEMPTS
    assert item.last_error == "an unexpected error while sending (RuntimeError)"


def test_the_code_page_shows_a_code_that_could_not_be_sent(app, smtp, deliver, monkeypatch):
    """A code's message failing in a way nobody expected: the page says it is being retried,
    never "Being sent now" until the code runs out."""
    add_user(app)
    b = Browser(app)
    assert b.log_in().status_code == 302
    monkeypatch.setattr(delivery, "hand_over", boom)
    deliver()
    page = b.text("/login/code")
    assert "Being sent now" not in page and "we are trying again" in page
    monkeypatch.undo()
    clock.advance(timedelta(seconds=10))
    deliver()
    assert smtp.wait_for(1)[0].code  # the retry delivers it


def test_a_code_whose_sign_in_ends_during_a_failed_hand_over_stays_cancelled(
        app, smtp, deliver, monkeypatch):
    """The client ends the sign-in while the mail server is refusing its code: the message
    stays "not sent: the sign-in ended", and is not queued again to fail later as a code that
    "could not be read back", a reason that would send support after SECRET_KEY."""
    user_id = add_user(app)
    assert Browser(app).log_in().status_code == 302

    def ended_meanwhile(item, *args, **kwargs):
        codes.end_pending_sign_ins(db.session.get(User, user_id), by="client")
        db.session.commit()
        raise DeliveryError("the mail server could not be reached")

    monkeypatch.setattr(delivery, "hand_over", ended_meanwhile)
    deliver()
    monkeypatch.undo()
    item = only_delivery(app)
    assert (item.status, item.last_error, item.code_encrypted) == (
        "cancelled", "sign-in cancelled", None)
    clock.advance(timedelta(minutes=5))
    assert deliver() == 0
    assert only_delivery(app).status == "cancelled" and smtp.messages == []
    with app.app_context():
        events = db.session.scalars(select(Event.type)).all()
    assert "delivery_retry" not in events and "delivery_failed" not in events


def test_a_message_recorded_as_sent_is_left_alone_after_a_later_error(
        app, smtp, deliver, monkeypatch):
    """An error after the send was recorded must not queue it again (a second message)."""
    add_user(app)
    assert Browser(app).log_in().status_code == 302
    real_process = delivery.process

    def process_then_fail(delivery_id: int) -> Optional[str]:
        real_process(delivery_id)
        raise RuntimeError("after the commit")

    monkeypatch.setattr(delivery, "process", process_then_fail)
    deliver()
    assert only_delivery(app).status == "sent"
    assert len(smtp.wait_for(1)) == 1
