"""SMS sign-in through the real vonage SDK and the HTTPS stub: sending, errors, email fallback."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery, Event, SignIn
from services import clock
from services.delivery import sms
from services.delivery import DeliveryError
from tests.sms.conftest import SMS_EMAIL, SMS_PHONE
from tests.vonage_stub import API_KEY, API_SECRET


def _deliveries(app) -> list[Delivery]:
    with app.app_context():
        rows = db.session.scalars(select(Delivery).order_by(Delivery.id)).all()
        db.session.expunge_all()
        return rows


def _events(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def test_sms_sign_in_end_to_end(app, sms_user, vonage, deliver, browser):
    assert browser.log_in(SMS_EMAIL).status_code == 302
    page = browser.text("/login/code")
    assert "•••• ••• 456" in page
    assert "Send by email instead" in page
    assert "7400 123456" not in page and "447400123456" not in page

    deliver()
    sent = vonage.wait_for(1)[0]
    assert sent.to == "447400123456"  # E.164 without its plus, as the SMS API wants
    assert sent.sender == app.config["VONAGE_SMS_FROM"]
    assert sent.authorization == "Basic " + base64.b64encode(
        f"{API_KEY}:{API_SECRET}".encode()).decode()
    assert sent.code and f"@localhost #{sent.code}" in sent.text  # the WebOTP line
    assert sent.type == "text"

    item = _deliveries(app)[0]
    assert item.channel == "sms" and item.status == "sent"
    assert sent.client_ref == item.client_ref  # ties the message to its delivery
    assert item.provider_ref == sent.message_id
    assert item.code_encrypted is None

    assert "Sent to your mobile network" in browser.text("/login/code")
    assert browser.enter_code(sent.code).status_code == 302
    assert browser.get("/portal").status_code == 200
    # The code's digits are nowhere in the audit trail.
    with app.app_context():
        details = " ".join(str(e.detail) for e in db.session.scalars(select(Event)))
    assert sent.code not in details


def test_transient_error_is_retried(app, sms_user, vonage, deliver, browser):
    vonage.refuse_next("1")  # throttled
    browser.log_in(SMS_EMAIL)
    deliver()
    item = _deliveries(app)[0]
    assert item.status == "queued" and item.attempts == 1
    assert "busy" in item.last_error
    assert "trying again" in browser.text("/login/code")
    assert _events(app, "delivery_retry")

    clock.advance(timedelta(seconds=6))
    deliver()
    item = _deliveries(app)[0]
    assert item.status == "sent" and item.attempts == 2
    sent = vonage.last_to(SMS_PHONE)
    assert len(vonage.received) == 2
    assert browser.enter_code(sent.code).status_code == 302


def test_server_error_then_success(app, sms_user, vonage, deliver, browser):
    vonage.fail_next_http(500)
    browser.log_in(SMS_EMAIL)
    deliver()
    assert _deliveries(app)[0].status == "queued"
    clock.advance(timedelta(seconds=6))
    deliver()
    assert _deliveries(app)[0].status == "sent"


@pytest.mark.parametrize("status, reason", [
    ("7", "barred"),
    ("9", "run out of credit"),
    ("6", "invalid number"),
    ("29", "approved test numbers"),
    ("33", "no longer in service"),
    ("4", "account details"),
])
def test_permanent_error_fails_with_a_reason(app, sms_user, vonage, deliver, browser,
                                             status, reason):
    vonage.refuse_next(status)
    browser.log_in(SMS_EMAIL)
    deliver()
    item = _deliveries(app)[0]
    assert item.status == "failed" and item.attempts == 1
    assert reason in item.last_error
    assert item.code_encrypted is None
    page = browser.text("/login/code")
    assert "Could not be sent" in page and reason in page
    assert "Send by email instead" in page
    clock.advance(timedelta(minutes=1))
    deliver()
    assert len(vonage.received) == 1  # not retried


def test_wrong_credentials_are_permanent(app, sms_user, vonage, deliver, browser):
    app.config["VONAGE_API_SECRET"] = "not-the-secret"
    browser.log_in(SMS_EMAIL)
    deliver()
    item = _deliveries(app)[0]
    assert item.status == "failed"
    assert "refused our account details" in item.last_error


def test_unreachable_service_is_transient(app, sms_user, vonage, deliver, browser):
    vonage.stop()
    browser.log_in(SMS_EMAIL)
    deliver()
    item = _deliveries(app)[0]
    assert item.status == "queued"
    assert "could not be reached" in item.last_error


def test_untrusted_certificate_is_refused(app, sms_user, vonage, deliver, browser):
    """The stub's CA is trusted only through VONAGE_CA_BUNDLE, never globally."""
    app.config["VONAGE_CA_BUNDLE"] = None
    browser.log_in(SMS_EMAIL)
    deliver()
    assert vonage.received == []
    item = _deliveries(app)[0]
    assert item.status == "queued" and "could not be reached" in item.last_error


def test_send_by_email_instead(app, sms_user, vonage, smtp, deliver, browser):
    vonage.refuse_next("7")
    browser.log_in(SMS_EMAIL)
    deliver()
    page = browser.text("/login/code")
    assert "Could not be sent" in page

    # The switch is a resend (SPEC: cooldown 30 s, at most 3), even after a failed text: the
    # wait is explained without "the code may already be on its way", which it is not.
    response = browser.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    assert response.status_code == 302
    waiting = browser.text("/login/code")
    assert "Your last message could not be sent" in waiting and "on its way" not in waiting
    clock.advance(timedelta(seconds=31))
    response = browser.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    assert response.status_code == 302
    assert "sent the same code to your email instead" in browser.text("/login/code")
    deliver()
    mail = smtp.wait_for(1)[0]
    assert mail.to == [SMS_EMAIL] and mail.code

    with app.app_context():
        sign_in = db.session.scalars(select(SignIn)).one()
        assert sign_in.channel == "email"
        assert sign_in.destination == SMS_EMAIL
    page = browser.text("/login/code")
    assert "m•••@example.com" in page
    assert browser.enter_code(mail.code).status_code == 302
    assert browser.get("/portal").status_code == 200


def test_email_fallback_sends_the_same_code(app, sms_user, vonage, smtp, deliver, browser):
    browser.log_in(SMS_EMAIL)
    deliver()
    sms_code = vonage.last_to(SMS_PHONE).code
    clock.advance(timedelta(seconds=31))
    browser.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    deliver()
    assert smtp.wait_for(1)[0].code == sms_code


def test_unicode_text_is_sent_as_unicode(app, sms_user, vonage, deliver, browser):
    app.config["PORTAL_NAME"] = "Bücher • Portal"
    browser.log_in(SMS_EMAIL)
    deliver()
    sent = vonage.wait_for(1)[0]
    assert sent.type == "unicode"
    assert "Bücher • Portal" in sent.text


@pytest.mark.parametrize("text, kind", [
    ("123456 is your code", "text"),
    ("Café £5 @ 10:05 [ok] {x} €", "text"),
    ("Smart quotes “like this”", "unicode"),
    ("emoji 🙂", "unicode"),
    ("•••• ••• 456", "unicode"),
])
def test_message_type(text, kind):
    assert sms.message_type(text) == kind


@pytest.mark.parametrize("status, permanent", [
    ("1", False), ("5", False), ("10", False),
    ("2", True), ("3", True), ("4", True), ("6", True), ("7", True), ("8", True),
    ("9", True), ("15", True), ("29", True), ("999", True),
])
def test_status_mapping(status, permanent):
    error = sms.refusal(status)
    assert isinstance(error, DeliveryError)
    assert error.permanent is permanent
    assert error.reason and "status" not in error.reason or status == "999"


# --- a text that could not be sent: what the client sees and can do ----------------------

def _visible(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def test_a_failed_text_says_what_to_do_instead_of_wait(app, sms_user, vonage, deliver,
                                                      browser):
    vonage.refuse_next("7")  # barred: no retry will help
    browser.log_in(SMS_EMAIL)
    deliver()
    page = browser.text("/login/code")
    assert re.search(r'<p class="hint" data-unless-failed\s+hidden', page)  # not "can take minutes"
    assert re.search(r'<span data-lead="sent"\s+hidden>We sent', page)
    assert re.search(r'<span data-lead="failed"\s+>We tried to send a <span class="nowrap">'
                     r'6-digit</span> code', page)
    failed = page[page.index('id="delivery-failed"'):]
    assert "hidden" not in failed[:failed.index(">")]
    assert "We could not send your code to" in _visible(failed)
    assert "Send it by email" in failed


def test_a_failed_text_after_every_resend_is_used_says_who_can_help(app, sms_user, vonage,
                                                                   deliver, browser):
    browser.log_in(SMS_EMAIL)
    deliver()
    for resend in range(3):
        clock.advance(timedelta(seconds=31))
        if resend == 2:
            vonage.refuse_next("7")  # the last resend fails for good
        browser.post("/login/code/resend", {}, form_page="/login/code")
        deliver()
    failed = _visible(browser.text("/login/code"))
    assert "we have sent it as many times as we can" in failed
    assert "Please contact us." in failed and "have your codes sent by email" in failed
    assert "Send it by email" not in failed


def test_a_switch_after_a_failure_is_made_once_however_often_it_is_posted(
        app, sms_user, vonage, smtp, deliver, browser):
    vonage.refuse_next("7")
    browser.log_in(SMS_EMAIL)
    deliver()
    clock.advance(timedelta(seconds=31))
    for _ in range(3):  # the button pressed three times, or three tabs
        browser.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    deliver()
    assert len(smtp.wait_for(1)) == 1
    with app.app_context():
        sign_in = db.session.scalars(select(SignIn)).one()
        assert sign_in.channel == "email" and sign_in.resend_count == 1


def test_the_login_page_does_not_call_a_failed_text_on_its_way(app, sms_user, vonage, deliver,
                                                              browser):
    vonage.refuse_next("7")
    browser.log_in(SMS_EMAIL)
    deliver()
    page = _visible(browser.text("/login"))
    assert "Your code could not be sent" in page
    assert "You already have a code on its way" not in page
    assert "See why and what you can do" in page
    # Another browser's keep-or-new question says so too, and leans to a new code.
    other = type(browser)(app)
    assert other.log_in(SMS_EMAIL).status_code == 302
    question = other.text("/login")
    assert "Your last code could not be sent" in _visible(question)
    assert re.search(r'value="new"\s+checked', question)
    assert not re.search(r'value="keep"\s+checked', question)
