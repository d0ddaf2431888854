"""A code email refused because the client's mailbox is full is told apart from one refused
because the address takes no mail: the first is retried while the code works and support is
told to have the client make room; the second fails at once and support checks the address.
The refusals come from the real SMTP server of tests/conftest.py, at RCPT TO."""

from __future__ import annotations

import html
import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery
from services import clock
from services.support import diagnosis
from tests.support.conftest import CLIENT, finding, hhmm, views

FULL = [("452 4.2.2 Mailbox full, try again later", "452 4.2.2"),
        ("552 5.2.2 The email account that you tried to reach is over quota", "552 5.2.2")]


def message(app) -> Delivery:
    with app.app_context():
        item = db.session.scalars(select(Delivery).where(Delivery.destination == CLIENT)).one()
        db.session.expunge(item)
        return item


def words(page: str) -> str:
    """A page's text as it reads, without its tags."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def client_sees(phone) -> tuple[str, dict]:
    """The code page's text and the status answer its script polls."""
    return words(phone.text("/login/code")), phone.get("/login/code/status").get_json()


def assert_nothing_more_for_the_client(page: str, status: dict) -> None:
    """The mail server's reason is for support: the client is not told codes or causes."""
    for said in (page, status["delivery"]["text"]):
        for detail in ("452", "552", "550", "4.2.2", "5.2.2", "5.1.1", "mail server",
                       "refused", "client's"):
            assert detail not in said


@pytest.mark.parametrize("answer, code_words", FULL)
def test_a_full_mailbox_is_retried_and_support_is_told_it_is_full(
        app, client_id, staff, smtp, deliver, phone, answer, code_words):
    smtp.refuse_with = answer
    assert phone.log_in().status_code == 302
    deliver()

    item = message(app)
    assert item.status == "queued" and item.attempts == 1  # to be tried again, not failed
    assert item.last_error == f"the client's mailbox is full ({code_words})"
    assert item.next_attempt_at is not None

    [view] = views(app, client_id)
    full = finding(view, diagnosis.DELIVERY_FAILED)
    assert full.severity == diagnosis.WARNING
    assert f"keeps failing: the client's mailbox is full ({code_words})" in full.text
    assert "still trying" in full.text
    assert ("Tell the client their mailbox is full: once they delete some emails to make room, "
            f"the code comes with our next try; we keep trying while it works (until "
            f"{hhmm(app, item.give_up_at, view.sign_in.created_at)}). Or offer to change their "
            "email address, or to send their codes by text.") in full.text
    assert "refused" not in full.text and "Check the email address is right" not in full.text

    console = words(staff.text(f"/support/clients/{client_id}"))
    assert "Tell the client their mailbox is full" in console
    assert f"Sending failed for a moment The client's mailbox is full ({code_words}); " \
           f"trying again at" in console

    page, status = client_sees(phone)
    # The client is told their own mailbox is full (tests/test_code_page_mailbox_full.py).
    assert status["delivery"]["state"] == "retrying"
    assert status["delivery"]["text"].startswith("Your email provider says your mailbox is full")
    assert status["delivery"]["text"] in page
    assert "Your code could not be sent" not in page
    assert_nothing_more_for_the_client(page, status)

    # The client made room: the next try delivers the same sign-in's code, which works.
    smtp.refuse_with = None
    clock.advance(timedelta(seconds=10))
    deliver()
    mail = smtp.wait_for(2)[-1]  # the staff member's own code came first
    assert mail.to == [CLIENT]
    assert message(app).status == "sent"
    assert phone.enter_code(mail.code).status_code == 302
    [view] = views(app, client_id)
    assert diagnosis.DELIVERY_FAILED not in [f.kind for f in view.findings]


@pytest.mark.parametrize("answer, code_words", FULL)
def test_a_mailbox_full_until_the_code_ran_out_says_so(
        app, client_id, staff, smtp, deliver, phone, answer, code_words):
    smtp.refuse_with = answer
    assert phone.log_in().status_code == 302
    for _ in range(40):  # the backoff's tries, until the next would come after the code ran out
        deliver()
        if message(app).status == "failed":
            break
        clock.advance(timedelta(seconds=15))
    item = message(app)
    assert item.status == "failed" and item.attempts > 1
    assert item.last_error.startswith(f"the client's mailbox is full ({code_words})")

    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert failed.severity == diagnosis.PROBLEM
    assert ("Delivery failed: the email to c•••@example.com could not be sent: "
            f"the client's mailbox is full ({code_words})") in failed.text
    assert ("The client's mailbox is full, so it could not take the message: ask them to delete "
            "some emails to make room and sign in again for a new code, or offer to change "
            "their email address, or to send their codes by text.") in failed.text
    assert "Check the email address is right" not in failed.text
    assert "The client's mailbox is full, so" in words(staff.text(f"/support/clients/{client_id}"))

    # The client is told their mailbox was full (tests/test_code_page_mailbox_full.py).
    page, status = client_sees(phone)
    assert status["delivery"] == {**status["delivery"], "state": "failed", "text":
                                  "Could not be sent: your email provider said your mailbox "
                                  "was full."}
    assert ("We could not deliver your code to c•••@example.com: your email provider said "
            "your mailbox was full") in page
    assert_nothing_more_for_the_client(page, status)


def test_a_full_mailbox_when_the_code_ran_out_gives_the_full_mailbox_advice(
        app, client_id, smtp, deliver, phone):
    smtp.refuse_with = "452 4.2.2 Mailbox full"
    assert phone.log_in().status_code == 302
    deliver()
    clock.advance(timedelta(minutes=11))  # no try meanwhile (the server was stopped, say)
    deliver()  # the sign-in has run out: its message is given up

    [view] = views(app, client_id)
    ended = finding(view, diagnosis.DELIVERY_FAILED)
    assert ended.severity == diagnosis.PROBLEM
    assert "the client's mailbox is full (452 4.2.2)" in ended.text
    assert "ask them to delete some emails to make room" in ended.text


def test_a_wrong_address_stays_refused_for_good(app, client_id, staff, smtp, deliver, phone):
    smtp.refuse_with = "550 5.1.1 No such user here"
    assert phone.log_in().status_code == 302
    deliver()

    item = message(app)
    assert item.status == "failed" and item.attempts == 1  # not tried again
    assert item.last_error == "the mail server refused the address (550)"  # as before

    [view] = views(app, client_id)
    failed = finding(view, diagnosis.DELIVERY_FAILED)
    assert failed.severity == diagnosis.PROBLEM
    assert ("the email to c•••@example.com could not be sent: the mail server refused the "
            "address (550)") in failed.text
    assert ("Check the email address is right: the client's mail server says that address "
            "does not take mail. Go through its spelling with the client; if it is wrong, "
            "change it for them.") in failed.text
    assert "full" not in failed.text  # not the full mailbox's advice, nor "is not full"

    console = words(staff.text(f"/support/clients/{client_id}"))
    assert "The mail server refused the address (550)" in console
    assert "mailbox is full" not in console

    page, status = client_sees(phone)
    assert status["delivery"]["state"] == "failed"
    assert status["delivery"]["text"] == "Not delivered."
    assert ("We could not deliver your code to c•••@example.com. The address may be wrong, "
            "or the mailbox may be full.") in page
