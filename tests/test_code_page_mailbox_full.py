"""The code page of a client whose mailbox is full says so, in plain words, while we keep
trying and once the code ran out: delete some emails, or contact us. The page as loaded and
the status answer its script polls (the fast path and the route alike) say the same thing.
Other refusals keep their words. The refusals come from the real SMTP server of
tests/conftest.py, at RCPT TO; the mail server's codes and words stay for support."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from html.parser import HTMLParser

import pytest
from sqlalchemy import select

from blueprints.auth import StatusFastPath
from extensions import db
from models import Delivery
from services import clock

STATUS = "/login/code/status"
HOW = "call 020 7946 0000"
FULL = ["452 4.2.2 Mailbox full, try again later",
        "552 5.2.2 The email account that you tried to reach is over quota"]
FULL_RETRYING = ("Your email provider says your mailbox is full, so we could not deliver your "
                 "code yet. Delete some emails (and empty your bin or deleted items) to make "
                 "room: we will keep trying until the code runs out.")
FULL_FAILED = "Could not be sent: your email provider said your mailbox was full."
RETRYING = "Sending failed for a moment; we are trying again."
MAYBE_WRONG = ("We could not deliver your code to c•••@example.com. The address may be wrong, "
               "or the mailbox may be full.")
WAS_FULL = ("We could not deliver your code to c•••@example.com: your email provider said your "
            "mailbox was full, and it still was when the code ran out. Delete some emails (and "
            "empty your bin or deleted items) to make room, then sign in again for a new code.")
HELP_WHILE_FULL = (f"If you cannot make room before then, please contact us: {HOW}. We can send "
                   f"your codes another way.")
HELP_ONCE_FULL = (f"If you cannot make room, or this keeps happening, please contact us: {HOW}. "
                  f"We can send your codes another way.")
JUNK = "If it is not in your inbox, look in your junk or spam folder."
# What the client is never told: the mail server's codes and words, support's wording.
SERVERS_WORDS = ("452", "552", "550", "451", "4.2.2", "5.2.2", "5.1.1", "4.7.1", "quota",
                 "mail server", "refused", "client's", "Mailbox full", "Greylisted")


class _Visible(HTMLParser):
    """The text a person sees: what is inside <body>, but not in a `hidden` element."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta",
            "source", "track", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[bool] = []  # per open element: whether it hides what it holds
        self.parts: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag in self.VOID:
            return
        names = {name for name, _ in attrs}
        self.stack.append("hidden" in names or tag in ("script", "style", "title", "head"))

    def handle_endtag(self, tag):
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data):
        if not any(self.stack):
            self.parts.append(data)


def visible(page: str) -> str:
    parser = _Visible()
    parser.feed(page)
    return " ".join("".join(parser.parts).split())


def everything(page: str) -> str:
    """A page's text, hidden parts too (what a script may show)."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def delivery_text(page: str) -> str:
    return html.unescape(re.search(r'<span id="delivery-text">([^<]*)</span>', page).group(1))


def status_answers(browser, monkeypatch) -> dict:
    """The poll's answer, from the fast path and from the route (the fast path stood aside):
    the same, byte for byte, but for the resend countdown."""
    fast = browser.get(STATUS)
    with monkeypatch.context() as patch:
        patch.setattr(StatusFastPath, "answer", lambda self, environ: None)
        slow = browser.get(STATUS)
    assert fast.status_code == slow.status_code == 200
    countdown = re.compile(rb'"resend_wait":\s*(\d+|null)')
    assert countdown.sub(b"", fast.get_data()) == countdown.sub(b"", slow.get_data())
    return fast.get_json()


def message(app) -> Delivery:
    with app.app_context():
        item = db.session.scalars(select(Delivery)).one()
        db.session.expunge(item)
        return item


def refused(app, smtp, deliver, browser, answer: str) -> None:
    app.config["PORTAL_CONTACT"] = HOW
    smtp.refuse_with = answer
    assert browser.log_in().status_code == 302
    deliver()


def until_given_up(app, deliver) -> None:
    """Retry with the backoff until the next try would come after the code ran out."""
    for _ in range(40):
        deliver()
        if message(app).status == "failed":
            return
        clock.advance(timedelta(seconds=15))
    raise AssertionError("the message was never given up")


def assert_nothing_of_the_servers(page: str, status: dict) -> None:
    for said in (everything(page), status["delivery"]["text"]):
        for detail in SERVERS_WORDS:
            assert detail not in said


@pytest.mark.parametrize("answer", FULL)
def test_while_we_retry_a_full_mailbox_the_page_says_to_make_room(
        app, user, smtp, deliver, browser, monkeypatch, answer):
    refused(app, smtp, deliver, browser, answer)
    assert message(app).status == "queued"  # to be tried again

    page = browser.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == FULL_RETRYING
    assert FULL_RETRYING in seen
    assert HELP_WHILE_FULL in seen  # the way out when they cannot make room
    assert 'href="tel:02079460000"' in page
    assert "The code works until" in seen
    assert JUNK not in seen  # the code is in no junk folder: it never came
    assert "Look in your junk or spam folder" not in seen  # nor in "Not received a code?"
    assert "Your mailbox is full: delete some emails to make room" in seen
    assert RETRYING not in seen and "Your code could not be sent" not in seen
    assert MAYBE_WRONG not in seen and WAS_FULL not in seen

    status = status_answers(browser, monkeypatch)
    assert status["delivery"]["state"] == "retrying"  # the state the script knows
    assert status["delivery"]["text"] == FULL_RETRYING
    assert status["delivery"]["mailbox_full"] is True
    assert_nothing_of_the_servers(page, status)


@pytest.mark.parametrize("answer", FULL)
def test_a_mailbox_full_until_the_code_ran_out_says_it_was_full_and_what_next(
        app, user, smtp, deliver, browser, monkeypatch, answer):
    refused(app, smtp, deliver, browser, answer)
    until_given_up(app, deliver)

    page = browser.text("/login/code")
    seen = visible(page)
    assert ">Your code could not be sent</h1>" in page
    assert delivery_text(page) == FULL_FAILED
    assert WAS_FULL in seen and HELP_ONCE_FULL in seen
    assert "Sign in again" in seen
    assert MAYBE_WRONG not in seen and "If that is not your email address" not in seen
    assert HELP_WHILE_FULL not in seen and FULL_RETRYING not in seen

    status = status_answers(browser, monkeypatch)
    assert status["delivery"]["state"] == "failed"
    assert status["delivery"]["text"] == FULL_FAILED
    assert status["delivery"]["mailbox_full"] is True
    assert_nothing_of_the_servers(page, status)


def test_a_wrong_address_keeps_its_words(app, user, smtp, deliver, browser, monkeypatch):
    refused(app, smtp, deliver, browser, "550 5.1.1 No such user here")
    assert message(app).status == "failed"

    page = browser.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == "Not delivered."
    assert MAYBE_WRONG in seen
    assert (f"If that is not your email address, or this keeps happening, please contact us: "
            f"{HOW}. We can see what went wrong and help.") in seen
    assert "mailbox was full" not in seen and "mailbox is full" not in seen
    assert HELP_ONCE_FULL not in seen and HELP_WHILE_FULL not in seen

    status = status_answers(browser, monkeypatch)
    assert status["delivery"]["state"] == "failed"
    assert status["delivery"]["text"] == "Not delivered."
    assert status["delivery"]["mailbox_full"] is False


def test_a_passing_refusal_keeps_its_words(app, user, smtp, deliver, browser, monkeypatch):
    refused(app, smtp, deliver, browser, "451 4.7.1 Greylisted, try again later")
    assert message(app).status == "queued"

    page = browser.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == RETRYING
    assert "The code works until" in seen
    assert JUNK not in seen  # not while nothing has left (tests/test_code_page_lead.py)
    assert "full" not in seen and HELP_WHILE_FULL not in seen

    status = status_answers(browser, monkeypatch)
    assert status["delivery"]["state"] == "retrying"
    assert status["delivery"]["text"] == RETRYING
    assert status["delivery"]["mailbox_full"] is False
    assert_nothing_of_the_servers(page, status)


def test_once_room_is_made_the_code_comes_and_the_page_says_sent(
        app, user, smtp, deliver, browser, monkeypatch):
    refused(app, smtp, deliver, browser, FULL[1])
    smtp.refuse_with = None
    clock.advance(timedelta(seconds=10))
    deliver()
    mail = smtp.wait_for(1)[-1]

    page = browser.text("/login/code")
    seen = visible(page)
    assert delivery_text(page) == "Sent. It can take a few minutes to arrive."
    assert JUNK in seen and "full" not in seen
    assert "Look in your junk or spam folder" in seen
    status = status_answers(browser, monkeypatch)
    assert status["delivery"]["state"] == "sent"
    assert status["delivery"]["mailbox_full"] is False
    assert browser.enter_code(mail.code).status_code == 302
