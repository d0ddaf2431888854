"""A sign-in by authenticator app in real Chromium: nothing was sent, so neither Back nor a
sign-in in another tab may speak of a code "sent to" an address (they said "we sent a code at
10:19 to ." with no address), and Back, which loses nothing, is not held up."""

from __future__ import annotations

import pyotp
import pytest
from playwright.sync_api import expect

from services import clock
from tests.authenticators.conftest import give_confirmed_app
from tests.browser.conftest import (
    DESKTOP, SMALL_PHONE, assert_accessible, assert_fits_phone, log_in, screenshot,
)

pytestmark = pytest.mark.browser

SOON = 8000


@pytest.mark.parametrize("viewport", [DESKTOP, SMALL_PHONE], ids=lambda v: f"{v['width']}px")
def test_back_from_an_app_sign_in_goes_back_to_a_page_that_offers_it(
        viewport, live_server, new_context):
    secret = give_confirmed_app(live_server.app)
    page = new_context(viewport, phone=viewport is SMALL_PHONE).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    sent = page.locator("[data-code-page]").get_attribute("data-sent-at")
    page.click("input[name=code]")

    page.go_back()  # nothing was sent, so nothing is lost: no "the code we sent" warning
    page.wait_for_url("**/login")
    guard = page.locator('[data-guard="pending"]')
    expect(guard.locator("h1")).to_have_text("You have already started signing in")
    expect(guard).to_contain_text(f"At {sent} you gave your password, and we asked for the "
                                  "code from your authenticator app.")
    expect(page.locator("main")).not_to_contain_text("sent a code")
    expect(page.locator("[data-login-form] button[type=submit]")).to_have_text("Log in")
    assert_accessible(page, "login-app-waiting")
    if viewport is SMALL_PHONE:
        assert_fits_phone(page, "login-app-waiting")
    screenshot(page, "review6-login-app-waiting")

    guard.get_by_role("link", name="Enter the code from your app").click()
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", pyotp.TOTP(secret).at(clock.now().timestamp()))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")


def test_another_tab_starting_an_app_sign_in_says_so_without_an_address(
        live_server, new_context):
    give_confirmed_app(live_server.app)
    context = new_context()
    login = context.new_page()
    login.goto(live_server("/login"))
    other = context.new_page()
    log_in(other, live_server)
    other.wait_for_url("**/login/code")

    guard = login.locator("#tab-guard")
    expect(guard).to_contain_text("You have just started signing in in another tab, with the "
                                  "code from your authenticator app.", timeout=SOON)
    assert "sent a code" not in guard.inner_text()
    expect(guard.get_by_role("link", name="Enter the code from your app")).to_be_visible()
    # Signing in here loses nothing: the form is not turned into "Send me a new code".
    expect(login.locator("[data-login-form] button[type=submit]")).to_have_text("Log in")


def test_a_code_page_replaced_by_an_app_sign_in_elsewhere_names_the_app(
        live_server, new_context):
    give_confirmed_app(live_server.app)
    first = new_context().new_page()
    log_in(first, live_server)
    first.wait_for_url("**/login/code")

    second = new_context().new_page()  # another browser
    log_in(second, live_server)
    second.wait_for_url("**/login")
    second.get_by_text("Start a new sign-in").click()
    second.get_by_role("button", name="Continue").click()
    second.wait_for_url("**/login/code")

    guard = first.locator("#tab-guard")
    expect(guard).to_contain_text("If it was you, enter the code from your authenticator app "
                                  "there.", timeout=SOON)
    assert "sent a new code to" not in guard.inner_text()
