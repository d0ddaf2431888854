"""The code page of a message that could not be sent: plain words, no box for a code that never
came, "Sign in again" as a button, and the mail server's reason kept for support."""

from __future__ import annotations

import re
from datetime import timedelta

from services import clock
from tests.conftest import Browser, add_user

HOW = "call 020 7946 0000"


def _element(page: str, element_id: str) -> str:
    """The opening tag of the element with this id."""
    match = re.search(rf'<[a-z0-9]+ [^>]*id="{element_id}"[^>]*>', page)
    assert match, f"no #{element_id} on the page"
    return match.group(0)


def _hidden(page: str, element_id: str) -> bool:
    return re.search(r"\shidden(\s|>|=)", _element(page, element_id)) is not None


def _refused(app, smtp, deliver, browser) -> str:
    smtp.refuse_with = "550 No such mailbox"
    assert browser.log_in().status_code == 302
    deliver()
    return browser.text("/login/code")


def test_an_email_refused_for_good_is_said_plainly_without_a_code_box(
        app, user, smtp, deliver, browser):
    app.config["PORTAL_CONTACT"] = HOW
    page = _refused(app, smtp, deliver, browser)
    assert "<h1 id=\"code-title\"" in page and ">Your code could not be sent</h1>" in page
    assert "<title>Your code could not be sent" in page
    text = " ".join(re.sub(r"<[^>]+>", " ", page).split())
    assert ("We could not deliver your code to c•••@example.com. The address may be wrong, "
            "or the mailbox may be full.") in text
    assert ('please contact us: call <a href="tel:02079460000">020 7946 0000</a>.'
            in " ".join(page.split()))
    assert "550" not in text and "refused" not in text and "mail server" not in text
    # No code can have come, so there is nothing to type it into, and no "resend" to wait for.
    assert _hidden(page, "code-entry") and _hidden(page, "delivery-help")
    assert not _hidden(page, "delivery-failed")
    assert re.search(r'<a class="button button-primary" href="/login">Sign in again</a>', page)


def test_the_status_answer_says_what_the_reloaded_page_says(app, user, smtp, deliver, browser):
    page = _refused(app, smtp, deliver, browser)
    shown = re.search(r'<span id="delivery-text">([^<]*)</span>', page).group(1)
    status = browser.get("/login/code/status").get_json()
    assert status["delivery"] == {**status["delivery"], "state": "failed", "text": shown}
    assert shown == "Not delivered."


def test_support_still_reads_the_mail_servers_reason(app, user, smtp, deliver, sign_in):
    _refused(app, smtp, deliver, Browser(app))
    smtp.refuse_with = None
    add_user(app, "support@example.com", role="support")
    staff = sign_in("support@example.com", Browser(app))
    timeline = staff.text(f"/support/clients/{user}")
    assert "refused the address (550)" in timeline


def test_after_a_resend_the_box_stays_for_the_code_that_may_have_come(
        app, user, smtp, deliver, browser):
    assert browser.log_in().status_code == 302
    deliver()  # the first message went
    clock.advance(timedelta(seconds=31))
    smtp.refuse_with = "550 No such mailbox"
    browser.post("/login/code/resend", {}, form_page="/login/code")
    deliver()  # the resend did not
    page = browser.text("/login/code")
    assert not _hidden(page, "delivery-failed")
    assert not _hidden(page, "code-entry") and not _hidden(page, "delivery-help")
    assert ">Enter your code</h1>" in page and "data-title-failed" not in page


def test_a_message_on_its_way_marks_what_the_script_hides_if_it_fails(
        app, user, smtp, deliver, browser):
    assert browser.log_in().status_code == 302
    page = browser.text("/login/code")
    assert ">Enter your code</h1>" in page
    assert 'data-title-failed="Your code could not be sent"' in _element(page, "code-title")
    assert "data-unless-failed" in _element(page, "code-entry") and not _hidden(page, "code-entry")
    assert _hidden(page, "delivery-failed")
