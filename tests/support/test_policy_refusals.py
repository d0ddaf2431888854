"""A code email turned away under a mail server's security or policy rules (an enhanced status
code 5.7.X: "550 5.7.26 This mail is unauthenticated", "550 5.7.1 Relaying denied") is about
the firm's mail, not the client's address: it fails at once, at RCPT as at DATA, support is
told to go to the firm's administrator (not through the address's spelling with the client),
and the client's code page does not say their address may be wrong. A passing 4.7.X
(greylisting) is retried with its old words, and a wrong address (5.1.1) keeps its own. The
refusals come from the real SMTP server of tests/conftest.py."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from services.support import diagnosis
from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    PHONE, assert_accessible, assert_fits_phone, chromium, live_server, log_in, new_context,
    screenshot,
)
from tests.support.conftest import CLIENT, finding, hhmm, views
from tests.support.test_mailbox_full import message, words
from tests.test_code_page_mailbox_full import (
    delivery_text, everything, status_answers, visible)

HOW = "call 020 7946 0000"
# Gmail's answer, several lines long, each with its enhanced code where RFC 2034 puts it.
GMAIL_UNAUTHENTICATED = (
    "550-5.7.26 This mail is unauthenticated, which poses a security risk to the\r\n"
    "550-5.7.26 sender and Gmail users, and has been blocked. The sender must\r\n"
    "550 5.7.26 authenticate with at least one of SPF or DKIM. - gsmtp")
POLICY = ("our email was turned away under a mail server's security or spam rules, not for "
          "the client's address")
SUPPORT_ADVICE = (
    "This is on our side, not the client's: their email address is probably right, so do not "
    "ask them to change it or to check its spelling. Tell the firm's administrator: our mail "
    "settings need checking (SPF, DKIM and DMARC for our domain, or our mail provider's "
    "relay). Meanwhile offer to send the client's codes by text.")
CLIENT_FAILED = "Could not be sent: our email was not accepted on its way to you."
CLIENT_NOTICE = (
    "We could not deliver your code to c•••@example.com: our email was not accepted on its way "
    "to you. This is a problem with our email, not with your address or anything you typed. "
    f"Please contact us: {HOW}. We can send your codes another way while we put it right.")
MAYBE_WRONG = ("We could not deliver your code to c•••@example.com. The address may be wrong, "
               "or the mailbox may be full.")
NOT_YOURS = "If that is not your email address"
SPELLING = "Go through its spelling with the client"
RETRYING = "Sending failed for a moment; we are trying again."
# Never told to the client: the mail server's codes and words, support's wording.
SERVERS_WORDS = ("550", "451", "5.7", "4.7", "unauthenticated", "Gmail", "SPF", "DKIM",
                 "DMARC", "spam rules", "mail server", "refused", "client's", "Greylisted")


def refused(app, smtp, deliver, phone, *, at: str, answer: str) -> None:
    """The client logs in and the dispatcher meets `answer` at RCPT or at DATA."""
    app.config["PORTAL_CONTACT"] = HOW
    if at == "rcpt":
        smtp.refuse_with = answer
    else:
        smtp.refuse_data_with = answer
    assert phone.log_in().status_code == 302
    deliver()


def assert_nothing_of_the_servers(page: str, status: dict) -> None:
    for said in (everything(page), status["delivery"]["text"]):
        for detail in SERVERS_WORDS:
            assert detail not in said, detail


@pytest.mark.parametrize("at", ["rcpt", "data"])
def test_unauthenticated_mail_fails_at_once_and_support_is_sent_to_the_firms_settings(
        app, client_id, staff, smtp, deliver, phone, monkeypatch, caplog, at):
    with caplog.at_level(logging.ERROR, logger="clientgate.delivery"):
        refused(app, smtp, deliver, phone, at=at, answer=GMAIL_UNAUTHENTICATED)

    item = message(app)
    assert item.status == "failed" and item.attempts == 1  # final: not tried again
    assert item.last_error == f"{POLICY} (550 5.7.26)"
    assert smtp.messages == [] or all(CLIENT not in m.to for m in smtp.messages)

    # The operator is told what to check, in the server's words, without the client's address.
    [logged] = [r for r in caplog.records if r.levelno == logging.ERROR]
    said = logged.getMessage()
    assert f"delivery {item.id}: {POLICY} (550 5.7.26: " in said
    assert "This mail is unauthenticated" in said
    assert "check SPF, DKIM and DMARC for MAIL_DEFAULT_SENDER's domain" in said
    assert CLIENT not in said

    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert failed.severity == diagnosis.PROBLEM
    assert (f"Delivery failed: the email to c•••@example.com could not be sent: {POLICY} "
            f"(550 5.7.26). We gave up at {hhmm(app, item.failed_at, view.sign_in.created_at)} "
            "after 1 try.") in failed.text
    assert SUPPORT_ADVICE in failed.text
    assert SPELLING not in failed.text and "Check the email address is right" not in failed.text
    assert "full" not in failed.text
    assert SUPPORT_ADVICE in words(staff.text(f"/support/clients/{client_id}"))

    page = phone.text("/login/code")
    seen = visible(page)
    assert ">Your code could not be sent</h1>" in page
    assert delivery_text(page) == CLIENT_FAILED
    assert CLIENT_NOTICE in seen
    assert 'href="tel:02079460000"' in page
    assert "Sign in again" in seen
    assert MAYBE_WRONG not in seen and NOT_YOURS not in seen
    assert "mailbox" not in seen

    status = status_answers(phone, monkeypatch)
    assert status["delivery"]["state"] == "failed"  # the state the script knows
    assert status["delivery"]["text"] == CLIENT_FAILED
    assert status["delivery"]["refused_by_policy"] is True
    assert status["delivery"]["mailbox_full"] is False
    assert_nothing_of_the_servers(page, status)


@pytest.mark.parametrize("at, answer, code_words", [
    ("rcpt", "550 5.7.1 Relaying denied", "550 5.7.1"),
    ("rcpt", "550 5.7.708 Access denied, traffic not accepted from this IP", "550 5.7.708"),
    ("data", "554 5.7.1 Message rejected as spam by Content Filtering", "554 5.7.1"),
])
def test_other_policy_refusals_read_the_same(
        app, client_id, smtp, deliver, phone, at, answer, code_words):
    refused(app, smtp, deliver, phone, at=at, answer=answer)

    item = message(app)
    assert item.status == "failed" and item.attempts == 1
    assert item.last_error == f"{POLICY} ({code_words})"
    [view] = views(app, client_id)
    assert SUPPORT_ADVICE in finding(view, diagnosis.DELIVERY_FAILED).text
    seen = visible(phone.text("/login/code"))
    assert CLIENT_NOTICE in seen and MAYBE_WRONG not in seen


@pytest.mark.parametrize("at, answer, reason", [
    ("rcpt", "451 4.7.1 Greylisted, try again later",
     "the mail server refused the address (451)"),
    ("data", "451 4.7.1 Greylisted, try again later", "the mail server answered 451"),
    ("rcpt", "421 4.7.0 Try again later, closing connection",
     "the mail server refused the address (421)"),
])
def test_a_passing_4_7_refusal_is_retried_with_its_old_words(
        app, client_id, smtp, deliver, phone, monkeypatch, at, answer, reason):
    refused(app, smtp, deliver, phone, at=at, answer=answer)

    item = message(app)
    assert item.status == "queued" and item.attempts == 1  # tried again, as before
    assert item.last_error == reason

    [view] = views(app, client_id)
    retrying = finding(view, diagnosis.DELIVERY_FAILED)
    assert retrying.severity == diagnosis.WARNING
    assert f"keeps failing: {reason}." in retrying.text
    assert "our side" not in retrying.text and "administrator" not in retrying.text
    assert "security" not in retrying.text and "spam" not in retrying.text

    page = phone.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == RETRYING
    assert "We are still trying to send your 6-digit code" in seen
    # Not yet: nothing has left to be in a junk folder (tests/test_code_page_lead.py).
    assert "If it is not in your inbox, look in your junk or spam folder." not in seen
    assert "not accepted" not in seen and "your address" not in seen
    status = status_answers(phone, monkeypatch)
    assert status["delivery"]["state"] == "retrying"
    assert status["delivery"]["text"] == RETRYING
    assert status["delivery"]["refused_by_policy"] is False

    # Let through on the next try: the code comes.
    smtp.refuse_with = smtp.refuse_data_with = None
    clock.advance(timedelta(seconds=10))
    deliver()
    assert message(app).status == "sent"


def test_a_wrong_address_keeps_the_wrong_address_words(
        app, client_id, smtp, deliver, phone, monkeypatch):
    refused(app, smtp, deliver, phone, at="rcpt", answer="550 5.1.1 No such user here")

    item = message(app)
    assert item.status == "failed" and item.attempts == 1
    assert item.last_error == "the mail server refused the address (550)"

    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert ("Check the email address is right: the client's mail server says that address "
            f"does not take mail. {SPELLING}; if it is wrong, change it for them.") in failed.text
    assert "our side" not in failed.text and "administrator" not in failed.text

    page = phone.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == "Not delivered."
    assert MAYBE_WRONG in seen
    assert (f"{NOT_YOURS}, or this keeps happening, please contact us: {HOW}. We can see what "
            "went wrong and help.") in seen
    assert "not accepted on its way" not in seen
    status = status_answers(phone, monkeypatch)
    assert status["delivery"]["text"] == "Not delivered."
    assert status["delivery"]["refused_by_policy"] is False


@pytest.mark.browser
def test_the_open_code_page_says_it_live_in_chromium(live_server, new_context, smtp):
    """The mail server is down when the client signs in; back, it turns the email away as
    unauthenticated: the open page swaps "the address may be wrong" for our words, live and
    on reload alike."""
    live_server.app.config["PORTAL_CONTACT"] = HOW
    smtp.stop()
    page = new_context(PHONE, phone=True).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#delivery-status")).to_contain_text("trying again", timeout=8000)

    smtp.refuse_data_with = GMAIL_UNAUTHENTICATED
    smtp.start()
    clock.advance(timedelta(seconds=6))
    failed = page.locator("#delivery-failed")
    expect(failed).to_contain_text(CLIENT_NOTICE, timeout=10000)
    assert page.evaluate("window.sameDocument") is True, "it must change without a reload"
    expect(page.locator("h1")).to_have_text("Your code could not be sent")
    expect(page.locator("#delivery-text")).to_have_text(CLIENT_FAILED)
    expect(failed.get_by_text("The address may be wrong")).to_be_hidden()
    expect(failed.get_by_text(NOT_YOURS)).to_be_hidden()
    expect(page.locator("#policy-refused").get_by_role("link", name="020 7946 0000")) \
        .to_have_attribute("href", "tel:02079460000")
    main = page.locator("main").inner_text()
    assert "550" not in main and "5.7.26" not in main and "unauthenticated" not in main
    assert_fits_phone(page, "code-policy-refused")
    assert_accessible(page, "code-policy-refused")
    screenshot(page, "code-policy-refused")
    page.reload()
    assert page.locator("main").inner_text() == main, "the reloaded page says the same"
