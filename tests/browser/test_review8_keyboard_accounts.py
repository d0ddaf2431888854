"""The eighth review, by keyboard and with a screen reader in mind, at 1280 and 390 px: the
client's account pages (security, devices) and the support console's actions.

- A page that comes back at a #part of itself (#passkeys, #passkey-1, #authenticator-app,
  #trusted-devices): a browser skips `autofocus` when the address names an element, so the
  password box asked for again, its refusal and the notice of what was done were never focused
  or read out (the focus was on <body>, the notice out of sight at the top of the page).
- "Add a passkey" refused by the device: the focus stays on the button, beside the message.
- A refused choice of how codes come: the error is linked to the choices, and its summary link
  takes the keyboard there.
- A long name or address with nowhere to break made a 390 px phone zoom the page out.
- A support action done by keyboard alone on a phone.
"""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import (
    DESKTOP, PHONE, assert_accessible, assert_fits_phone, screenshot, sign_in_through_pages,
)
from tests.browser.test_passkeys import sign_in_by_email, virtual_authenticator
from tests.conftest import add_user

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


def fits(page, name: str) -> None:
    """No sideways scrolling, measured against the phone's own width: a phone given a wider
    page zooms the whole page out (window.innerWidth grows), which assert_fits_phone misses."""
    assert_fits_phone(page, name)
    width = page.viewport_size["width"]
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths == [width, width], f"{name} is wider than the phone: {widths}"


# A passkey named with no space to break at, as a client may name it after their address.
PASSKEY = "john.smith.laptop@smithandpartners.co.uk"


def refused_box(page, box_id: str) -> None:
    """The password box has the focus, says it is wrong, and names its error."""
    box = page.locator(f"#{box_id}")
    expect(box).to_be_focused()
    expect(box).to_have_attribute("aria-invalid", "true")
    expect(box).to_have_attribute("aria-describedby", f"{box_id}-hint {box_id}-error")
    expect(page.locator(f"#{box_id}-error")).to_contain_text("That password is not right")
    in_view(page, box)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_after_an_action_the_focus_is_where_the_client_is_looking(viewport, live_server,
                                                                  new_context, smtp):
    phone = viewport is PHONE
    context = new_context(viewport, phone=phone)
    page = context.new_page()
    virtual_authenticator(context, page)
    sign_in_by_email(page, live_server, smtp, remember=True)

    # A passkey added: the page comes back at #passkeys, and the notice saying so is there,
    # under the heading, with the focus, so it is seen and read out.
    page.goto(live_server("/account/security"))
    page.fill("input[name=name]", PASSKEY)
    activate(page, page.get_by_role("button", name="Add a passkey"))
    page.wait_for_url("**/account/security#passkeys")
    notice = page.locator("#passkeys .notice-success")
    expect(notice).to_be_focused()
    expect(notice).to_contain_text(f"Your passkey “{PASSKEY}” is ready")
    in_view(page, notice)
    assert_accessible(page, "security-passkey-added")
    if phone:
        fits(page, "security-passkey-added")
    screenshot(page, "review8-passkey-added")

    # Ten minutes on, each change asks for the password on its own step: the box has the focus.
    clock.advance(timedelta(minutes=11))
    page.goto(live_server("/account/security"))
    activate(page, page.get_by_role("link", name=f"Remove the passkey {PASSKEY}"))
    expect(page.locator("#passkey-remove-password-1")).to_be_focused()
    # A wrong password: the box keeps the focus and says why, so it is read out.
    page.keyboard.type("not-the-password")
    press_and_load(page)
    refused_box(page, "passkey-remove-password-1")
    screenshot(page, "review8-passkey-remove-refused")

    page.goto(live_server("/account/security"))
    activate(page, page.get_by_role("button", name="Set up an authenticator app"))
    expect(page.locator("#totp-password")).to_be_focused()
    page.keyboard.type("still-not-it")
    press_and_load(page)
    refused_box(page, "totp-password")
    assert_accessible(page, "security-totp-refused")
    screenshot(page, "review8-totp-refused")

    # The devices page: the same for a passkey's Remove, and "Forget this device".
    page.goto(live_server("/account/devices"))
    activate(page, page.get_by_role("link", name=f"Remove the passkey {PASSKEY}"))
    expect(page.locator("#passkey-remove-password-1")).to_be_focused()
    activate(page, page.get_by_role("button", name="Forget this device"))
    page.wait_for_url("**/account/devices#trusted-devices")
    notice = page.locator("#trusted-devices .notice-success")
    expect(notice).to_be_focused()
    expect(notice).to_contain_text("We have forgotten that device")
    in_view(page, notice)
    assert_accessible(page, "devices-forgotten")
    if phone:
        fits(page, "devices-forgotten")
    screenshot(page, "review8-device-forgotten")


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


def test_a_refused_choice_of_how_codes_come_names_its_error_and_takes_the_keyboard(
        live_server, new_context, smtp):
    """The authenticator app was removed in another tab, and "From my authenticator app" saved
    here: the refusal is read with the choices, and its link in "There is a problem" takes the
    keyboard to them (it named a <fieldset>, which cannot take the focus)."""
    page = new_context(DESKTOP).new_page()
    sign_in_by_email(page, live_server, smtp)
    page.goto(live_server("/account/security"))
    activate(page, page.get_by_role("button", name="Set up an authenticator app"))
    key = page.locator("#totp-secret").inner_text()
    page.fill("#authenticator-app input[name=code]", pyotp.TOTP(key).at(clock.now().timestamp()))
    activate(page, page.get_by_role("button", name="Confirm and use this app"))
    page.goto(live_server("/account/security"))
    expect(page.get_by_label("From my authenticator app")).to_be_checked()

    other = page.context.new_page()
    other.goto(live_server("/account/security"))
    other.get_by_role("button", name="Stop using the authenticator app").click()
    expect(other.locator(".flashes")).to_contain_text("We have stopped using your authenticator")
    other.close()

    activate(page, page.get_by_role("button", name="Save changes"))
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    for choice in page.locator("#channel input[type=radio]").all():
        expect(choice).to_have_attribute("aria-describedby", "channel-error")
    expect(page.locator("#channel-error")).to_contain_text("Set up your authenticator app")
    page.keyboard.press("Tab")
    expect(summary.get_by_role("link")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("#channel")).to_be_focused()
    page.keyboard.press("Tab")
    # The app is gone, so its choice is too: none is ticked, and the first one is next.
    expect(page.locator("#channel input[type=radio]").first).to_be_focused()
    assert_accessible(page, "security-channel-refused")
    screenshot(page, "review8-channel-refused")


# A real-looking address with nowhere a browser breaks a line (no space, no hyphen).
LONG_EMAIL = "jonathan.richardson@smithandpartnerssolicitors.co.uk"


def test_a_support_action_by_keyboard_on_a_phone_for_a_long_address(live_server, new_context,
                                                                     smtp):
    """At 390 px, a client with a long address: their security page and the support console's
    action for them fit the phone (the address in a choice's words, or in "Back to", made the
    page wider, so the phone zoomed it out); the action is done by keyboard alone."""
    client_id = add_user(live_server.app, LONG_EMAIL)
    add_user(live_server.app, "staff@example.com", role="support")
    client = new_context(PHONE, phone=True).new_page()
    sign_in_through_pages(client, live_server, smtp, 1, email=LONG_EMAIL)
    client.goto(live_server("/account/security"))
    fits(client, "security-long-address")
    screenshot(client, "review8-security-long-address")

    page = new_context(PHONE, phone=True).new_page()
    sign_in_through_pages(page, live_server, smtp, 2, email="staff@example.com")
    page.goto(live_server(f"/support/clients/{client_id}"))
    fits(page, "support-client-long-address")
    activate(page, page.get_by_role("link", name="Send a link to set a new password"))
    fits(page, "support-confirm-long-address")
    assert_accessible(page, "support-confirm-long-address")
    # Sent without the tick: the summary has the focus; its link takes the keyboard to the box.
    activate(page, page.get_by_role("button", name="Send a link to set a new password"))
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    tick = page.locator("#confirm")
    expect(tick).to_be_focused()
    expect(tick).to_have_attribute("aria-describedby", "confirm-error")
    page.keyboard.press("Space")
    expect(tick).to_be_checked()
    screenshot(page, "review8-support-confirm-long-address")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Send a link to set a new password")).to_be_focused()
    press_and_load(page)
    page.wait_for_url(f"**/support/clients/{client_id}")
    expect(page.locator(".flashes [role=status]")).to_contain_text(LONG_EMAIL)
