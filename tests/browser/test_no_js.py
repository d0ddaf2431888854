"""With JavaScript switched off every page still works, end to end, in real Chromium."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import code_from, log_in

pytestmark = pytest.mark.browser


def test_sign_in_resend_back_and_a_second_browser_without_javascript(live_server, new_context,
                                                                      smtp):
    page = new_context(javascript=False).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    card = page.locator("[data-code-page]")
    sent_at, where = card.get_attribute("data-sent-at"), card.get_attribute("data-destination")
    expect(page.locator(".lead")).to_contain_text(f"at {sent_at} to {where}")
    expect(page.locator("#delivery-status")).to_be_visible()
    expect(page.locator("#tab-guard")).to_be_hidden()  # nothing to say without JavaScript
    field = page.locator("input[name=code]")
    assert field.get_attribute("autocomplete") == "one-time-code"
    assert field.get_attribute("inputmode") == "numeric"
    code = code_from(smtp, 1)

    # Resend: the server counts the cooldown, then sends the same code again.
    page.get_by_text("Not received a code?").click()
    page.get_by_role("button", name="Send the code again").click()
    expect(page.locator(".notice-warning[role=alert]")).to_contain_text(re.compile(r"wait \d+ seconds"))
    clock.advance(timedelta(seconds=31))
    page.get_by_text("Not received a code?").click()
    page.get_by_role("button", name="Send the code again").click()
    expect(page.locator(".notice-success")).to_contain_text(f"the code sent at {sent_at}")
    smtp.wait_for(2)
    assert smtp.messages[-1].code == code

    # Back: the login page says a code is on its way, never a stale form.
    for _ in range(3):  # each resend's page is an entry in the history too
        page.go_back()
    page.wait_for_url("**/login")
    guard = page.locator('[data-guard="pending"]')
    expect(guard).to_contain_text(f"We sent a code at {sent_at} to {where}")
    guard.get_by_role("link", name="Enter that code").click()
    page.wait_for_url("**/login/code")

    # A wrong code: the message is linked to the field.
    wrong = "000000" if code != "000000" else "111111"
    page.fill("input[name=code]", "12")
    page.get_by_role("button", name="Continue").click()
    field = page.locator("input[name=code]")
    expect(field).to_have_attribute("aria-invalid", "true")
    described = field.get_attribute("aria-describedby").split()
    assert "code-error" in described
    expect(page.locator("#code-error")).to_contain_text("6 digits")
    page.fill("input[name=code]", wrong)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#code-problem")).to_contain_text("not right")

    # Another browser signs in: it is asked first, and choosing a new code ends this one.
    clock.advance(timedelta(minutes=2))
    other = new_context(javascript=False).new_page()
    log_in(other, live_server)
    expect(other.locator("h1")).to_have_text("A code is already on its way")
    other.get_by_text("Send a new code").click()
    other.get_by_role("button", name="Continue").click()
    other.wait_for_url("**/login/code")
    new_sent = other.locator("[data-code-page]").get_attribute("data-sent-at")

    page.reload()  # the last page came from a POST (the wrong code): Chromium sends it again
    expect(page.locator("h1")).to_have_text("This code no longer works")
    expect(page.locator("#code-problem")).to_contain_text(f"you signed in again at {new_sent}")
    expect(page.locator("main")).to_contain_text(f"The new code went to {where}")
    expect(page.locator("input[name=code]")).to_have_count(0)

    other.fill("input[name=code]", code_from(smtp, 3))
    other.get_by_role("button", name="Continue").click()
    other.wait_for_url("**/portal")
    expect(other.locator("h1")).to_have_text("Welcome")
    other.get_by_role("button", name="Log out").click()
    other.wait_for_url("**/login")
    expect(other.locator(".notice-success")).to_contain_text("logged out")
