"""The code page in real Chromium: a message that fails for good while the page is open, an
account paused from elsewhere, and the way out at its foot ("Start again")."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from services.signin import limits
from tests.browser.conftest import (
    DESKTOP, PHONE, assert_accessible, assert_fits_phone, log_in, screenshot,
)

pytestmark = pytest.mark.browser

SOON = 8000  # ms: the code page asks every 2.5 s


def test_a_message_that_fails_for_good_takes_the_code_box_away_live_and_on_reload(
        live_server, new_context, smtp):
    live_server.app.config["PORTAL_CONTACT"] = "call 020 7946 0000 or email help@smithco.co.uk"
    smtp.stop()  # the mail server is down when the client signs in
    page = new_context(PHONE, phone=True).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#delivery-status")).to_contain_text("trying again", timeout=SOON)
    page.fill("input[name=code]", "12")  # the client is typing when it fails
    expect(page.locator("h1")).to_have_text("Enter your code")

    smtp.refuse_with = "550 No such mailbox"  # back, and refusing the address for good
    smtp.start()
    clock.advance(timedelta(seconds=6))
    failed = page.locator("#delivery-failed")
    expect(failed).to_contain_text("We could not deliver your code to c•••@example.com. The "
                                   "address may be wrong, or the mailbox may be full.",
                                   timeout=SOON + 2000)
    assert page.evaluate("window.sameDocument") is True, "it must change without a reload"
    expect(page.locator("h1")).to_have_text("Your code could not be sent")
    expect(page.locator("#delivery-text")).to_have_text("Not delivered.")
    expect(page.locator("input[name=code]")).to_be_hidden()
    expect(page.locator("input[name=remember]")).to_be_hidden()
    expect(page.get_by_role("button", name="Continue")).to_be_hidden()
    expect(page.locator("#delivery-help")).to_be_hidden()
    again = failed.get_by_role("link", name="Sign in again")
    expect(again).to_be_focused()  # focus was in the box that went
    expect(failed.get_by_role("link", name="020 7946 0000")).to_have_attribute(
        "href", "tel:02079460000")
    assert "550" not in page.locator("main").inner_text()
    assert_fits_phone(page, "code-failed")
    assert_accessible(page, "code-failed")
    screenshot(page, "ux-code-failed")

    live = page.locator("main").inner_text()
    page.reload()
    expect(page.locator("h1")).to_have_text("Your code could not be sent")
    assert page.locator("main").inner_text() == live, "the reloaded page says the same"
    page.set_viewport_size(DESKTOP)
    screenshot(page, "ux-code-failed")

    page.once("dialog", lambda dialog: dialog.dismiss())  # none expected: no code to lose
    again.click()
    page.wait_for_url("**/login")
    expect(page.locator('[data-guard="pending"]')).to_contain_text("could not be sent")


def test_a_full_mailbox_is_said_live_while_we_retry_and_once_the_code_ran_out(
        live_server, new_context, smtp):
    """The client's mail server says their mailbox is full: the open page tells them to make
    room (or contact us) while we keep trying, then that it was full when the code ran out."""
    live_server.app.config["PORTAL_CONTACT"] = "call 020 7946 0000"
    smtp.refuse_with = "552 5.2.2 The email account that you tried to reach is over quota"
    page = new_context(PHONE, phone=True).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#delivery-text")).to_have_text(
        "Your email provider says your mailbox is full, so we could not deliver your code yet. "
        "Delete some emails (and empty your bin or deleted items) to make room: we will keep "
        "trying until the code runs out.", timeout=SOON)
    help_ = page.locator("#mailbox-full-help")
    expect(help_).to_be_visible()
    expect(help_.get_by_role("link", name="020 7946 0000")).to_have_attribute(
        "href", "tel:02079460000")
    expect(page.get_by_text("If it is not in your inbox")).to_be_hidden()
    expect(page.locator("input[name=code]")).to_be_visible()  # it may yet come
    main = page.locator("main").inner_text()
    assert "552" not in main and "5.2.2" not in main and "quota" not in main
    assert_fits_phone(page, "code-mailbox-full")
    assert_accessible(page, "code-mailbox-full")
    screenshot(page, "ux-code-mailbox-full")

    clock.advance(timedelta(minutes=9, seconds=50))  # the next try is the last before it runs out
    failed = page.locator("#delivery-failed")
    expect(failed).to_contain_text("your email provider said your mailbox was full, and it "
                                   "still was when the code ran out", timeout=SOON + 4000)
    assert page.evaluate("window.sameDocument") is True, "it must change without a reload"
    expect(page.locator("h1")).to_have_text("Your code could not be sent")
    expect(failed.get_by_text("The address may be wrong")).to_be_hidden()
    expect(help_).to_be_hidden()
    expect(page.locator("input[name=code]")).to_be_hidden()
    assert "5.2.2" not in page.locator("main").inner_text()
    assert_accessible(page, "code-mailbox-full-failed")
    screenshot(page, "ux-code-mailbox-full-failed")
    live = page.locator("main").inner_text()
    page.reload()
    assert page.locator("main").inner_text() == live, "the reloaded page says the same"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_a_pause_from_elsewhere_offers_a_new_password_live(viewport, live_server, new_context):
    """Wrong passwords in another browser pause the account: the open code page says so and
    offers a new password, not a "Sign in again" that would meet the same refusal."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    page.evaluate("window.sameDocument = true")

    other = new_context(viewport).new_page()
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        log_in(other, live_server, password=f"not my password {attempt}")
    paused = other.locator("#paused")
    expect(paused).to_contain_text("signing in with this email address is paused until")
    expect(paused.get_by_role("link", name="Set a new password")).to_be_visible()
    if viewport is PHONE:
        assert_fits_phone(other, "login-address-paused")
    assert_accessible(other, "login-address-paused")
    screenshot(other, "ux-login-address-paused")
    log_in(other, live_server)  # the right password, while the account is paused
    expect(paused).to_contain_text("signing in to this account is paused until")
    screenshot(other, "ux-login-account-paused")

    alert = page.locator("#tab-guard")
    # Codes come by email here, so a reset ends the pause, and the alert says so.
    expect(alert).to_contain_text("set a new password now: the link we email you ends the "
                                  "pause", timeout=SOON)
    assert page.evaluate("window.sameDocument") is True
    expect(page.locator("h1")).to_have_text("Signing in is paused")
    expect(alert.get_by_role("link", name="Sign in again")).to_have_count(0)
    screenshot(page, "ux-code-paused-live")
    alert.get_by_role("link", name="Set a new password").click()
    page.wait_for_url("**/password/forgot")

    page.goto(live_server("/login/code"))  # the code page as it loads afresh
    expect(page.locator("h1")).to_have_text("Signing in is paused")
    expect(page.locator("#paused").get_by_role("link", name="Set a new password")).to_be_visible()
    if viewport is PHONE:
        assert_fits_phone(page, "code-paused")
    assert_accessible(page, "code-paused")
    screenshot(page, "ux-code-paused")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_start_again_warns_on_login_and_the_new_sign_in_tells_other_tabs(
        viewport, live_server, new_context, smtp):
    context = new_context(viewport, phone=viewport is PHONE)
    page, other = context.new_page(), context.new_page()
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    sent_at = page.locator("[data-code-page]").get_attribute("data-sent-at")
    other.goto(live_server("/login/code"))  # the same code page in a second tab
    other.evaluate("window.sameDocument = true")

    start_again = page.get_by_role("link", name="Start again")
    expect(page.locator("#start-again")).to_have_text("Not you, or want to stop? Start again")
    if viewport is PHONE:
        assert_fits_phone(page, "code")
    screenshot(page, "ux-code-start-again")
    start_again.click()
    page.wait_for_url("**/login")
    # The single-tab guard warns, as for Log In after Back: a code is on its way.
    guard = page.locator('[data-guard="pending"]')
    expect(guard).to_contain_text(f"We sent a code at {sent_at}")
    expect(guard).to_contain_text("will stop working")
    expect(page.locator("[data-login-form] button[type=submit]")).to_have_text(
        "Send me a new code")

    clock.advance(timedelta(minutes=1))  # so the two codes have different times
    log_in(page, live_server)  # a new sign-in from there, like any other
    page.wait_for_url("**/login/code")
    assert page.locator("[data-code-page]").get_attribute("data-sent-at") != sent_at
    alert = other.locator("#tab-guard")
    expect(alert).to_contain_text("you signed in again at", timeout=SOON)
    assert other.evaluate("window.sameDocument") is True
    expect(alert.get_by_role("link", name=re.compile(r"^Enter the \d\d:\d\d code$"))) \
        .to_be_visible()
