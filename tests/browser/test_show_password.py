"""The "Show password" button where a client chooses a new password, in real Chromium.

Reset, invitation and change password: it shows and hides the new password and its second
copy (never the current one), sends the form as password boxes, and is not there without
JavaScript.
"""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.accounts.conftest import link_in
from tests.browser.conftest import (
    DESKTOP, PHONE, assert_fits_phone, look, screenshot, sign_in_through_pages,
)

pytestmark = pytest.mark.browser

NEW_PASSWORD = "plum tree by the river"
ANOTHER = "Kettle on the windowsill 7"  # a capital and a space: nothing may "correct" them

# Every submit records the types of the form's inputs as the browser sends them; the page's own
# script listens first, so this sees what the password manager and the server see.
RECORD_TYPES_ON_SUBMIT = """
() => document.querySelector('form[data-show-password]').addEventListener('submit', event => {
  const types = {};
  for (const box of event.target.querySelectorAll('input:not([type=hidden])')) {
    types[box.name] = box.type;
  }
  sessionStorage.setItem('sent-types', JSON.stringify(types));
})
"""


def link_from(smtp, count: int, email: str, part: str) -> str:
    smtp.wait_for(count)
    return link_in(smtp.last_to(email).text, part)


def reset_link(page, server, smtp, count: int = 1) -> str:
    page.goto(server("/password/forgot"))
    page.fill("input[name=email]", "client@example.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    return link_from(smtp, count, "client@example.com", "/password/reset/")


def types_of(page, *names: str) -> list[str]:
    return [page.locator(f"input[name={name}]").get_attribute("type") for name in names]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_reset_page_shows_the_new_password_then_sends_it_hidden(viewport, live_server,
                                                                 new_context, smtp):
    phone = viewport["width"] <= 400
    page = new_context(viewport, phone=phone).new_page()
    page.goto(reset_link(page, live_server, smtp))
    expect(page.locator("h1")).to_have_text("Choose a new password")

    switch = page.get_by_role("button", name="Show password")
    expect(switch).to_have_count(1)
    expect(switch).to_have_attribute("type", "button")
    expect(switch).to_have_attribute("aria-controls", "password confirm")
    page.fill("input[name=password]", ANOTHER)
    page.fill("input[name=confirm]", ANOTHER)
    assert types_of(page, "password", "confirm") == ["password", "password"]

    switch.click()
    assert types_of(page, "password", "confirm") == ["text", "text"]
    expect(page.get_by_role("button", name="Hide password")).to_be_focused()
    expect(page.get_by_role("status")).to_have_text("Your password is shown.")
    box = page.locator("input[name=password]")
    expect(box).to_have_value(ANOTHER)  # the typing is kept when it is shown
    for name in ("autocapitalize", "autocorrect", "spellcheck"):
        assert box.get_attribute(name) in ("none", "off", "false"), name
    look(page, "show-password-reset-shown")

    # The keyboard alone: Space hides it again, Enter shows it.
    page.keyboard.press("Space")
    assert types_of(page, "password", "confirm") == ["password", "password"]
    expect(page.get_by_role("button", name="Show password")).to_be_focused()
    expect(page.get_by_role("status")).to_have_text("Your password is hidden.")
    page.keyboard.press("Enter")
    assert types_of(page, "password", "confirm") == ["text", "text"]
    # Enter on the switch did not send the form.
    expect(page.locator("h1")).to_have_text("Choose a new password")

    # Sent while shown: the browser sends password boxes, and the password works.
    page.evaluate(RECORD_TYPES_ON_SUBMIT)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")
    assert page.evaluate("() => JSON.parse(sessionStorage.getItem('sent-types'))") == {
        "username": "email", "password": "password", "confirm": "password"}
    smtp.wait_for(2)  # the note that the password changed
    sign_in_through_pages(page, live_server, smtp, 3, password=ANOTHER)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_change_password_shows_the_new_one_never_the_current(viewport, live_server,
                                                             new_context, smtp):
    phone = viewport["width"] <= 400
    page = new_context(viewport, phone=phone).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    page.goto(live_server("/account/security"))
    expect(page.get_by_role("button", name="Show password")).to_have_count(0)
    page.get_by_role("link", name="Change your password").click()
    expect(page.locator("h1")).to_have_text("Change your password")

    switch = page.get_by_role("button", name="Show password")
    expect(switch).to_have_count(1)
    page.fill("input[name=current_password]", "correct horse battery")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    switch.click()
    assert types_of(page, "current_password", "password", "confirm") == [
        "password", "text", "text"]
    look(page, "show-password-change-shown")

    page.evaluate(RECORD_TYPES_ON_SUBMIT)
    page.get_by_role("button", name="Change my password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is changed")
    assert page.evaluate("() => JSON.parse(sessionStorage.getItem('sent-types'))") == {
        "username": "email", "current_password": "password", "password": "password",
        "confirm": "password"}
    # The page comes back with the switch as new: hidden boxes, "Show password".
    expect(page.get_by_role("button", name="Show password")).to_be_visible()
    assert types_of(page, "password", "confirm") == ["password", "password"]
    look(page, "show-password-change-done")

    page.locator("header").get_by_role("button", name="Log out").click()
    page.wait_for_url("**/login")
    smtp.wait_for(2)  # the note that the password changed
    sign_in_through_pages(page, live_server, smtp, 3, password=NEW_PASSWORD)


def test_invitation_page_has_the_switch_too(live_server, new_context, smtp):
    result = live_server.app.test_cli_runner().invoke(
        args=["users", "invite", "anna@example.com", "--name", "Anna Smith"])
    assert result.exit_code == 0, result.output
    page = new_context(PHONE, phone=True).new_page()
    page.goto(link_from(smtp, 1, "anna@example.com", "/welcome/"))
    expect(page.locator("h1")).to_have_text("Welcome, Anna Smith")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.get_by_role("button", name="Show password").click()
    assert types_of(page, "password", "confirm") == ["text", "text"]
    look(page, "show-password-welcome-shown")
    page.get_by_role("button", name="Save my password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")
    sign_in_through_pages(page, live_server, smtp, 2, "anna@example.com", NEW_PASSWORD)


def test_without_javascript_there_is_no_switch_and_the_pages_work(live_server, new_context,
                                                                   smtp):
    page = new_context(PHONE, javascript=False, phone=True).new_page()
    page.goto(reset_link(page, live_server, smtp))
    expect(page.locator("h1")).to_have_text("Choose a new password")
    expect(page.get_by_role("button", name="Show password")).to_have_count(0)
    expect(page.locator("button[type=button]")).to_have_count(0)
    assert types_of(page, "password", "confirm") == ["password", "password"]
    assert_fits_phone(page, "show-password-reset-no-js")
    screenshot(page, "show-password-reset-no-js")
    page.fill("input[name=password]", NEW_PASSWORD)
    page.fill("input[name=confirm]", NEW_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")

    sign_in_through_pages(page, live_server, smtp, 3, password=NEW_PASSWORD)
    page.goto(live_server("/account/password"))
    expect(page.locator("h1")).to_have_text("Change your password")
    expect(page.get_by_role("button", name="Show password")).to_have_count(0)

