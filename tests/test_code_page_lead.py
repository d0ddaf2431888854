"""The code page's first line says the code was sent only once it was. While the message is
tried again (the mail server was down or turned it away for now, the mailbox is full) it
says we are still trying, and the advice to look in the junk folder waits: a client sent to
their junk folder for a code that never left looks there, finds nothing and gives up. Once
it is given up, the line says we tried. The mail server here is tests/conftest.py's real one.
"""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.test_code_page_mailbox_full import message, refused, until_given_up, visible

SENT = "We sent a 6-digit code at"
TRYING = "We are still trying to send your 6-digit code to c•••@example.com."
TRIED = "We tried to send a 6-digit code at"
JUNK = "If it is not in your inbox, look in your junk or spam folder."


def _lead(page: str) -> list[str]:
    """Which of the three first lines the page shows."""
    seen = visible(page)
    return [words for words in (SENT, TRYING, TRIED) if words in seen]


def test_a_sent_code_says_sent_and_where_to_look(app, user, smtp, deliver, browser):
    assert browser.log_in().status_code == 302
    deliver()
    page = browser.text("/login/code")
    assert _lead(page) == [SENT]
    assert f"{SENT} " in visible(page) and "to c•••@example.com." in visible(page)
    assert JUNK in visible(page)


def test_a_code_being_tried_again_says_so_and_not_to_look_in_junk(app, user, smtp, deliver,
                                                                 browser):
    refused(app, smtp, deliver, browser, "451 4.7.1 Greylisted, try again later")
    assert message(app).status == "queued"
    page = browser.text("/login/code")
    assert _lead(page) == [TRYING]
    seen = visible(page)
    assert "Sending failed for a moment; we are trying again." in seen
    assert JUNK not in seen
    assert "The code works until" in seen

    smtp.refuse_with = None  # the server takes it at the next try
    clock.advance(timedelta(seconds=6))
    deliver()
    assert message(app).status == "sent"
    page = browser.text("/login/code")
    assert _lead(page) == [SENT]
    assert JUNK in visible(page)


def test_a_full_mailbox_is_tried_again_too(app, user, smtp, deliver, browser):
    refused(app, smtp, deliver, browser, "452 4.2.2 Mailbox full, try again later")
    page = browser.text("/login/code")
    assert _lead(page) == [TRYING]
    assert JUNK not in visible(page)


def test_a_code_given_up_says_we_tried(app, user, smtp, deliver, browser):
    refused(app, smtp, deliver, browser, "451 4.3.0 Try again later")
    until_given_up(app, deliver)
    page = browser.text("/login/code")
    assert _lead(page) == [TRIED]
    assert JUNK not in visible(page)
