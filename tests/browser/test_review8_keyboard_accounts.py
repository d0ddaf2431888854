"""The eighth review, by keyboard and with a screen reader in mind: the client's account pages
(security, devices) after an action or a refusal, where the page comes back at a #part of
itself (#passkeys, #passkey-1, #authenticator-app, #trusted-devices).

A browser skips `autofocus` on a page whose address names an element, so before the fix the
password box asked for again, its refusal and the notice of what was done were never focused or
read out: the focus was on <body> and the notice was out of sight at the top of the page."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import DESKTOP, PHONE, assert_accessible, assert_fits_phone, screenshot
from tests.browser.test_passkeys import sign_in_by_email, virtual_authenticator

pytestmark = pytest.mark.browser


def press_and_load(page, key: str = "Enter") -> None:
    """A key that sends a form or follows a link: wait for the page it loads."""
    with page.expect_navigation():
        page.keyboard.press(key)
    page.wait_for_load_state("load")


def activate(page, locator) -> None:
    """Reach a control by keyboard focus and press Enter on it."""
    locator.focus()
    press_and_load(page)


def in_view(page, locator) -> None:
    box = locator.bounding_box()
    assert box and 0 <= box["y"] and box["y"] + 20 <= page.viewport_size["height"], box


def refused_box(page, box_id: str) -> None:
    """The password box has the focus, says it is wrong, and names its error."""
    box = page.locator(f"#{box_id}")
    expect(box).to_be_focused()
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_attribute("aria-describedby", f"{box_id}-hint {box_id}-error")
    expect(page.locator(f"#{box_id}-error")).to_contain_text("That password is not right")
    in_view(page, box)


def test_a_passkey_not_made_leaves_the_focus_on_its_button(live_server, new_context, smtp):
    """The client cancels the fingerprint prompt: the message is read out, and the keyboard is
    still on "Add a passkey", to try again, not back at the top of the page."""
    context = new_context(DESKTOP)
    context.add_init_script(
        "if (navigator.credentials) navigator.credentials.create = () =>"
        " Promise.reject(new DOMException('The operation was cancelled.', 'NotAllowedError'));")
    page = context.new_page()
    sign_in_by_email(page, live_server, smtp)
    page.goto(live_server("/account/security"))
    page.fill("input[name=name]", "Phone")
    button = page.get_by_role("button", name="Add a passkey")
    button.focus()
    page.keyboard.press("Enter")
    message = page.locator("#passkey-add-message")
    expect(message).to_be_visible()
    expect(message).to_have_attribute("role", "alert")
    expect(button).to_be_focused()
    expect(button).to_be_enabled()
    assert button.get_attribute("aria-disabled") is None
