"""A client's whole journey in real Chromium, at phone and desktop widths, as a review walks it.

An invitation link, a first password, signing in with a code by email, the portal, logging
out, a forgotten password and signing in again; and the turns it can take. Each test asserts
what a review of its screenshots found wrong, so the fix stays fixed.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from services.signin import limits

from tests.accounts.conftest import link_in
from tests.browser.conftest import (
    DESKTOP, PHONE, code_from, look,
)

pytestmark = pytest.mark.browser

SOON = 8000  # ms: the code page asks for its delivery status every 2.5 s
ANNA = "anna@example.com"
FIRST_PASSWORD = "plum tree by the river"
VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE],
                                    ids=lambda v: f"{v['width']}px")


def accept_invitation(page, server, smtp) -> None:
    """The firm invites Anna; she opens the link in the email and chooses her password."""
    result = server.app.test_cli_runner().invoke(
        args=["users", "invite", ANNA, "--name", "Anna Smith"])
    assert result.exit_code == 0, result.output
    smtp.wait_for(1)
    page.goto(link_in(smtp.last_to(ANNA).text, "/welcome/"))
    expect(page.locator("h1")).to_have_text("Welcome, Anna Smith")
    look(page, "journey-welcome", labelled=False)
    page.fill("input[name=password]", FIRST_PASSWORD)
    page.fill("input[name=confirm]", FIRST_PASSWORD)
    page.get_by_role("button", name="Save my password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")
    page.wait_for_url("**/login")


def password_step(page, password: str = FIRST_PASSWORD) -> None:
    """Email and password on the login page; ends on the code page."""
    page.fill("input[name=email]", ANNA)
    page.fill("input[name=password]", password)
    page.locator("[data-login-form] button[type=submit]").click()
    page.wait_for_url("**/login/code")


@VIEWPORTS
def test_the_code_page_says_a_thing_once(viewport, live_server, new_context, smtp):
    """Once an email is sent, its status said "It can take a few minutes to arrive." and the
    line under it began with the same sentence again."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    expect(page.locator("#delivery-text")).to_have_text(
        "Sent. It can take a few minutes to arrive.", timeout=SOON)
    look(page, "journey-code-sent", labelled=False)
    main = page.locator("main").inner_text()
    assert main.count("It can take a few minutes to arrive") == 1, main
    expect(page.locator("main")).to_contain_text("junk or spam folder")
    page.fill("input[name=code]", code_from(smtp, 2, ANNA))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")
    look(page, "journey-portal", labelled=False)


@VIEWPORTS
def test_a_second_tab_names_the_code_on_its_way_in_its_title(viewport, live_server,
                                                             new_context, smtp):
    """The single-tab guard's page led with "You already have a code on its way", but its
    title, the tab's name and what a screen reader says first, still said "Log in"."""
    context = new_context(viewport, phone=viewport is PHONE)
    page = context.new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    sent_at = page.locator("[data-code-page]").get_attribute("data-sent-at")

    second = context.new_page()
    second.goto(live_server("/login"))
    guard = second.locator('[data-guard="pending"]')
    expect(guard).to_contain_text(f"We sent a code at {sent_at}")
    look(second, "journey-second-tab", labelled=False)
    portal = live_server.app.config["PORTAL_NAME"]
    expect(second).to_have_title(f"You already have a code on its way – {portal}")
    guard.get_by_role("link", name="Enter that code").click()
    second.wait_for_url("**/login/code")
    expect(second).to_have_title(f"Enter your code – {portal}")


GAP_JS = """() => {
  const notice = document.getElementById('code-problem').getBoundingClientRect();
  const box = document.querySelector('input[name=code]').getBoundingClientRect();
  return box.top - notice.bottom;
}"""


@VIEWPORTS
def test_a_wrong_code_is_told_beside_the_code_box(viewport, live_server, new_context, smtp):
    """"That code is not right" stood at the top of the card, with the sent-at line, the
    delivery status and its hint between it and the box to type the code into again (about
    300 px on a phone), while a code of the wrong length was told at the box itself."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    code = code_from(smtp, 2, ANNA)
    wrong = "000000" if code != "000000" else "111111"
    for tries_left in (4, 3, 2):
        page.fill("input[name=code]", wrong)
        page.get_by_role("button", name="Continue").click()
        problem = page.locator("#code-problem")
        expect(problem).to_contain_text(f"That code is not right. Check it against the newest "
                                        f"message and try again. You have {tries_left} tries left.")
        gap = page.evaluate(GAP_JS)
        assert 0 < gap < 120, f"the message is {gap} px above the code box"
    look(page, "journey-wrong-code", labelled=False)
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")


LOOK_JS = """el => { const s = getComputedStyle(el);
  return [s.backgroundColor, s.borderTopColor, s.borderTopStyle].join(' '); }"""


@VIEWPORTS
def test_the_email_address_shown_for_a_new_password_does_not_look_typeable(
        viewport, live_server, new_context, smtp):
    """On "Welcome" and "Choose a new password" the email address, there for password
    managers and not to be changed, sat in a box drawn like the password boxes under it: a
    client tapped it to type and nothing happened."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    result = live_server.app.test_cli_runner().invoke(
        args=["users", "invite", ANNA, "--name", "Anna Smith"])
    assert result.exit_code == 0, result.output
    smtp.wait_for(1)
    page.goto(link_in(smtp.last_to(ANNA).text, "/welcome/"))
    address = page.locator("input[name=username]")
    expect(address).to_have_value(ANNA)
    expect(address).to_have_attribute("readonly", "")
    typeable = page.locator("input[name=password]").evaluate(LOOK_JS)
    assert address.evaluate(LOOK_JS) != typeable, "it looks like a box to type in"
    look(page, "journey-welcome-address", labelled=False)


@VIEWPORTS
def test_a_code_page_that_learns_its_code_died_says_so_in_its_title(viewport, live_server,
                                                                   new_context, smtp):
    """When a sign-in in another browser stopped this page's code, its heading changed at
    once to "This code no longer works", but the tab still read "Enter your code"."""
    phone = viewport is PHONE
    page = new_context(viewport, phone=phone).new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    page.evaluate("window.sameDocument = true")
    clock.advance(timedelta(minutes=2))

    other = new_context(viewport, phone=phone).new_page()
    other.goto(live_server("/login"))
    password_step_with_choice(other)

    expect(page.locator("#code-title")).to_have_text("This code no longer works", timeout=SOON)
    portal = live_server.app.config["PORTAL_NAME"]
    expect(page).to_have_title(f"This code no longer works – {portal}")
    assert page.evaluate("window.sameDocument") is True
    look(page, "journey-code-stopped-live", labelled=False)
    page.reload()
    expect(page).to_have_title(f"This code no longer works – {portal}")  # as the server says


def password_step_with_choice(page) -> None:
    """The password in a second browser while a code is on its way: ask for a new code."""
    page.fill("input[name=email]", ANNA)
    page.fill("input[name=password]", FIRST_PASSWORD)
    page.locator("[data-login-form] button[type=submit]").click()
    expect(page.locator("h1")).to_have_text("A code is already on its way")
    page.get_by_text("Send a new code").click()
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/login/code")


@VIEWPORTS
def test_a_code_that_could_not_be_sent_says_so_in_the_title_too(viewport, live_server,
                                                                new_context, smtp):
    """When Anna's code could not be sent, the heading changed live to "Your code could not be
    sent" and the tab still read "Enter your code"."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    accept_invitation(page, live_server, smtp)
    smtp.stop()  # the mail server is down when she signs in
    password_step(page)
    page.evaluate("window.sameDocument = true")
    expect(page.locator("#delivery-status")).to_contain_text("trying again", timeout=SOON)
    smtp.refuse_with = "550 No such mailbox"  # back, and refusing the address for good
    smtp.start()
    clock.advance(timedelta(seconds=6))
    expect(page.locator("h1")).to_have_text("Your code could not be sent", timeout=SOON + 2000)
    portal = live_server.app.config["PORTAL_NAME"]
    expect(page).to_have_title(f"Your code could not be sent – {portal}")
    assert page.evaluate("window.sameDocument") is True
    look(page, "journey-code-not-sent-live", labelled=False)


@VIEWPORTS
def test_an_older_code_is_told_beside_the_code_box(viewport, live_server, new_context, smtp):
    """"That code is from your sign-in at 10:00; use the one sent at 10:05" asks for the code
    again, as "not right" does, but stood at the top of the card, far from the box."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    older = code_from(smtp, 2, ANNA)
    clock.advance(timedelta(minutes=1))
    page.get_by_role("link", name="Start again").click()
    page.wait_for_url("**/login")
    password_step(page)  # "Send me a new code"
    newer = code_from(smtp, 3, ANNA)
    page.fill("input[name=code]", older)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#code-problem")).to_contain_text("That code is from your sign-in at")
    gap = page.evaluate(GAP_JS)
    assert 0 < gap < 120, f"the message is {gap} px above the code box"
    look(page, "journey-older-code", labelled=False)
    page.fill("input[name=code]", newer)
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")


RESET_PASSWORD = "kettle on the windowsill"


@VIEWPORTS
def test_the_whole_journey(viewport, live_server, new_context, smtp):
    """Invitation, first password, code, portal, Back, preferences, log out, a forgotten
    password, a new one, signing in again; then a code left to run out, and a paused account.
    Every page is checked and photographed for the review."""
    phone = viewport is PHONE
    portal = live_server.app.config["PORTAL_NAME"]
    page = new_context(viewport, phone=phone).new_page()
    accept_invitation(page, live_server, smtp)
    look(page, "journey-login-after-welcome", labelled=False)
    password_step(page)
    expect(page).to_have_title(f"Enter your code – {portal}")
    page.fill("input[name=code]", code_from(smtp, 2, ANNA))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")
    expect(page.locator("main")).to_contain_text("You are signed in as Anna Smith")

    page.go_back()  # Back after signing in: the code page is over, so the portal stays
    page.wait_for_url("**/portal")
    expect(page.locator("h1")).to_have_text("Welcome")
    look(page, "journey-back-after-sign-in", labelled=False)

    page.locator("header").get_by_role("link", name="Account").click()
    page.wait_for_url("**/account/security")
    expect(page.locator("main")).to_contain_text(ANNA)
    look(page, "journey-preferences", labelled=False)

    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    expect(page.locator("body")).to_contain_text("You have logged out.")
    look(page, "journey-logged-out", labelled=False)

    page.get_by_role("link", name="Forgotten your password?").click()
    page.wait_for_url("**/password/forgot")
    look(page, "journey-forgot", labelled=False)
    page.fill("input[name=email]", ANNA)
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    look(page, "journey-forgot-sent", labelled=False)
    smtp.wait_for(3)
    page.goto(link_in(smtp.last_to(ANNA).text, "/password/reset/"))
    expect(page.locator("h1")).to_have_text("Choose a new password")
    page.fill("input[name=password]", RESET_PASSWORD)
    page.fill("input[name=confirm]", RESET_PASSWORD + " 2")
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator("#confirm-error")).to_contain_text("not the same")
    look(page, "journey-reset-mismatch", labelled=False)
    page.fill("input[name=password]", RESET_PASSWORD)
    page.fill("input[name=confirm]", RESET_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")
    page.wait_for_url("**/login")

    password_step(page, RESET_PASSWORD)
    code = newest_code(smtp, 5)  # invitation, code, reset link, "password changed", code
    clock.advance(timedelta(minutes=11))  # the code is left to run out
    page.fill("input[name=code]", code)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Your code has run out")
    expect(page).to_have_title(f"Your code has run out – {portal}")
    look(page, "journey-code-ran-out", labelled=False)
    page.get_by_role("link", name="Sign in again").click()
    page.wait_for_url("**/login")
    password_step(page, RESET_PASSWORD)
    page.fill("input[name=code]", newest_code(smtp, 6))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")

    # Someone else guesses at her password in another browser until the account is paused.
    other = new_context(viewport, phone=phone).new_page()
    other.goto(live_server("/login"))
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        other.fill("input[name=email]", ANNA)
        other.fill("input[name=password]", f"not her password {attempt}")
        other.locator("[data-login-form] button[type=submit]").click()
        other.wait_for_url("**/login")
    paused = other.locator("#paused")
    expect(paused).to_contain_text("is paused until")
    look(other, "journey-paused", labelled=False)
    paused.get_by_role("link", name="Set a new password").click()
    other.wait_for_url("**/password/forgot")


def newest_code(smtp, count: int) -> str:
    """The code in the newest sign-in code message, once `count` messages have come."""
    smtp.wait_for(count)
    return next(mail.code for mail in reversed(smtp.messages)
                if "sign-in code" in mail.subject and ANNA in mail.to)


@VIEWPORTS
def test_after_a_code_that_did_not_work_the_cursor_waits_in_the_code_box(
        viewport, live_server, new_context, smtp):
    """After "That code is not right" (or a code of the wrong length) the page came back with
    nothing focused: on a phone, one more tap on the box before typing the code again."""
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    accept_invitation(page, live_server, smtp)
    password_step(page)
    expect(page.locator("input[name=code]")).not_to_be_focused()  # a fresh page: read it first
    code = code_from(smtp, 2, ANNA)
    for wrong in ("12345", "000000" if code != "000000" else "111111"):
        page.fill("input[name=code]", wrong)
        page.get_by_role("button", name="Continue").click()
        page.wait_for_load_state("load")
        expect(page.locator("input[name=code]")).to_be_focused()
    page.keyboard.type(code)
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal")
