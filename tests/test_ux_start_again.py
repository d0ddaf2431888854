"""The code page's way out: "Not you, or want to stop? Start again", to the login page, where a
new sign-in is like any other (the code already sent stops working)."""

from __future__ import annotations

import re

from tests.conftest import Browser, add_user, request_code

START_AGAIN = re.compile(r'<p class="hint start-again" id="start-again">Not you, or want to '
                         r'stop\?\s+<a href="/login">Start again</a></p>')


def test_a_waiting_code_page_offers_to_start_again(app, user, smtp, deliver, browser):
    request_code(browser, smtp, deliver)
    assert START_AGAIN.search(browser.text("/login/code"))


def test_the_login_page_it_leads_to_still_warns_of_the_code_on_its_way(
        app, user, smtp, deliver, browser):
    old = request_code(browser, smtp, deliver)
    login = browser.text("/login")  # the link's page
    assert "You already have a code on its way" in login
    assert "will stop working" in login

    new = request_code(browser, smtp, deliver)  # a new sign-in from there, like any other
    answer = browser.enter_code(old)
    assert answer.status_code == 422
    assert "That code is from your sign-in at" in answer.get_data(as_text=True)
    assert browser.enter_code(new).headers["Location"] == "/portal"


def test_someone_else_on_this_device_starts_their_own_sign_in(app, user, smtp, deliver):
    add_user(app, "other@example.com")
    b = Browser(app)
    request_code(b, smtp, deliver)
    code = request_code(b, smtp, deliver, "other@example.com")
    page = b.text("/login/code")
    assert "o•••@example.com" in page
    assert b.enter_code(code).headers["Location"] == "/portal"


def test_an_ended_sign_in_offers_sign_in_again_not_start_again(app, user, smtp, deliver):
    first, second = Browser(app), Browser(app)
    request_code(first, smtp, deliver)
    second.log_in()
    second.post("/login", {"action": "new"}, form_page="/login")  # supersedes the first
    page = first.text("/login/code")
    assert "This code no longer works" in page
    assert "start-again" not in page and ">Sign in again</a>" in page
