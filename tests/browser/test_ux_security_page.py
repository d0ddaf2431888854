"""/account/security in Chromium, as the UX review asked: after ten minutes one password box at
a time, on the form the client is using; and while a new number is proved, the code first."""

from __future__ import annotations

import re
import time
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.conftest import TEST_PASSWORD
from tests.browser.conftest import (
    DESKTOP, PHONE, look, sign_in_through_pages,
)
from tests.browser.test_passkeys import virtual_authenticator

pytestmark = pytest.mark.browser

VIEWPORTS = pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")


def visible_password_boxes(page) -> list[str]:
    return page.locator("input[type=password]:visible").evaluate_all(
        "boxes => boxes.map(box => box.id)")


def proof_code(page, server) -> str:
    """The code of the newest text to confirm a number, from the development outbox."""
    outbox = page.context.new_page()
    try:
        for _ in range(50):
            outbox.goto(server("/dev/outbox"))
            texts = outbox.locator("pre").all_inner_texts()
            found = [t for t in texts if "confirm this mobile number" in t]
            if found:
                return re.match(r"\d{6}", found[0]).group(0)
            time.sleep(0.1)
        raise AssertionError("no text to confirm the number arrived")
    finally:
        outbox.close()


@VIEWPORTS
def test_after_ten_minutes_one_password_box_on_the_form_in_use(viewport, live_server,
                                                              new_context, smtp):
    context = new_context(viewport, phone=viewport is PHONE)
    page = context.new_page()
    virtual_authenticator(context, page)
    sign_in_through_pages(page, live_server, smtp, 1)
    clock.advance(timedelta(minutes=11))
    page.goto(live_server("/account/security"))
    assert visible_password_boxes(page) == ["password"]  # the settings form's alone
    look(page, "ux-security-later")

    # "Set up an authenticator app" opens its step: the box moves there, with a Cancel.
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("#totp-password")).to_be_visible()
    assert visible_password_boxes(page) == ["totp-password"]
    look(page, "ux-security-app-step")
    page.locator("#authenticator-app").get_by_role("link", name="Cancel").click()
    expect(page.locator("#totp-password")).to_have_count(0)
    assert visible_password_boxes(page) == ["password"]

    # "Add a passkey" likewise, keeping the name typed; then the passkey is made from there.
    page.fill("input[name=name]", "Work laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkey-password")).to_be_visible()
    assert visible_password_boxes(page) == ["passkey-password"]
    expect(page.locator("input[name=name]")).to_have_value("Work laptop")
    look(page, "ux-security-passkey-step")
    page.locator("#passkey-password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".flashes")).to_contain_text("Your passkey “Work laptop” is ready")
    assert visible_password_boxes(page) == ["password"]


@VIEWPORTS
def test_saving_from_a_page_without_the_box_asks_on_that_form(viewport, live_server,
                                                             new_context, smtp):
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    clock.advance(timedelta(minutes=11))
    page.goto(live_server("/account/security?confirm=totp-start#authenticator-app"))
    # The client changes their mind and uses the settings form instead.
    page.locator("label", has_text="By text message to a UK mobile").click()
    page.fill("input[name=phone]", "07400 123456")
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#password")).to_be_focused()
    expect(page.locator("#password-hint")).to_have_text(
        "Enter your password to make this change: you signed in more than 10 minutes ago.")
    expect(page.locator(".error-summary")).to_have_count(0)
    assert visible_password_boxes(page) == ["password"]
    expect(page.locator("input[name=phone]")).to_have_value("07400 123456")
    look(page, "ux-security-settings-step")
    page.locator("#password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("h1")).to_have_text("Confirm your new number")


@VIEWPORTS
def test_a_number_being_proved_leads_with_its_code(viewport, live_server, new_context, smtp):
    page = new_context(viewport, phone=viewport is PHONE).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    page.goto(live_server("/account/security"))
    page.locator("label", has_text="By text message to a UK mobile").click()
    page.fill("input[name=phone]", "07400 123456")
    page.get_by_role("button", name="Save changes").click()

    expect(page.locator("h1")).to_have_text("Confirm your new number")
    expect(page).to_have_title(re.compile("^Confirm your new number"))
    # The code is the only thing to fill in; the settings are folded, the rest waits.
    assert page.locator("input:visible:not([type=hidden])").evaluate_all(
        "boxes => boxes.map(box => box.name)") == ["code"]
    expect(page.locator("input[name=phone]")).to_be_hidden()
    expect(page.locator("#passkeys")).to_have_count(0)
    expect(page.get_by_role("button", name="Stop: keep things as they are")).to_be_visible()
    code_box = page.locator("input[name=code]").bounding_box()
    assert code_box["y"] + code_box["height"] < page.viewport_size["height"]  # no scrolling
    look(page, "ux-security-proof")

    page.get_by_text("Use a different number, or change something else").click()
    expect(page.locator("input[name=phone]")).to_be_visible()
    expect(page.locator("input[name=phone]")).to_have_value("07400 123456")  # to correct
    look(page, "ux-security-proof-other-settings")

    page.fill("input[name=code]", proof_code(page, live_server))
    page.get_by_role("button", name="Confirm number").click()
    expect(page.locator(".flashes")).to_contain_text("07400 123456 is confirmed")
    expect(page.locator("h1")).to_have_text("How you get your sign-in codes")
    expect(page.locator("#passkeys")).to_be_visible()


def test_a_browser_without_passkeys_is_told_before_the_password_step(live_server, new_context,
                                                                     smtp):
    """After ten minutes "Add a passkey" first asks for the password: a browser that cannot
    make one is told there, not after the password is typed."""
    context = new_context(DESKTOP)
    context.add_init_script("delete window.PublicKeyCredential;")
    page = context.new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    clock.advance(timedelta(minutes=11))
    page.goto(live_server("/account/security"))
    passkeys = page.locator("#passkeys")
    expect(passkeys.get_by_role("button", name="Add a passkey")).to_be_disabled()
    expect(passkeys.get_by_role("alert")).to_contain_text("This browser cannot make passkeys.")
    # The rest of the page is as it was: the settings form keeps its password box.
    assert visible_password_boxes(page) == ["password"]
    look(page, "ux-security-no-passkeys")
