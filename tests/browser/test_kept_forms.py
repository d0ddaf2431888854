"""In Chromium, on a phone: the security page left open past the session's end, a new number
typed and saved. The browser's own headers (Origin, Sec-Fetch-Site, Referer) are what let
blueprints/kept_forms.py keep the number and bring the client back to the page after signing
in; tests/test_kept_forms.py has the rules, this checks a real browser sends what they need."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import PHONE, code_from, log_in, look, sign_in_through_pages

pytestmark = pytest.mark.browser

NEW_NUMBER = "07400 654321"


def test_a_number_typed_after_the_session_ended_is_there_after_signing_in_again(
        live_server, new_context, smtp):
    page = new_context(PHONE, phone=True).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    page.goto(live_server("/account/security"))
    clock.advance(timedelta(minutes=live_server.app.config["SESSION_IDLE_MINUTES"] + 1))

    page.locator("label", has_text="By text message to a UK mobile").click()
    page.fill("input[name=phone]", NEW_NUMBER)
    page.get_by_role("button", name="Save changes").click()
    page.wait_for_url("**/login?next=%2Faccount%2Fsecurity")
    expect(page.locator(".notice").first).to_contain_text(
        "Your session had ended, so nothing you sent was saved. Sign in again, and what you "
        "typed will be filled in again")
    look(page, "kept-forms-session-ended")

    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", code_from(smtp, 2))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/account/security")
    expect(page.locator(".notice").first).to_contain_text(
        "Nothing was saved when your session ended. What you typed is filled in again below")
    expect(page.locator("input[name=phone]")).to_have_value(NEW_NUMBER)
    expect(page.get_by_label("By text message to a UK mobile")).to_be_checked()
    look(page, "kept-forms-filled-in-again")
