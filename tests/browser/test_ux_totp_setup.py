"""Setting up an authenticator app on the phone in one's hand: open the app from the page, or
copy the key (in fours to read, whole to paste); the QR code is for a computer."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pyotp
import pytest
from playwright.sync_api import expect

from services import clock
from tests.browser.conftest import (
    DESKTOP, PHONE, assert_accessible, assert_fits_phone, screenshot, sign_in_through_pages,
)

pytestmark = pytest.mark.browser


def _start_setup(page, server, smtp) -> None:
    sign_in_through_pages(page, server, smtp, 1)
    page.goto(server("/account/security"))
    page.get_by_role("button", name="Set up an authenticator app").click()
    expect(page.locator("img.qr")).to_be_visible()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_the_phone_in_hand_can_open_the_app_or_copy_the_key(viewport, live_server, new_context,
                                                            smtp):
    phone = viewport is PHONE
    context = new_context(viewport, phone=phone)
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    page = context.new_page()
    _start_setup(page, live_server, smtp)
    section = page.locator("#authenticator-app")
    expect(section).to_contain_text("On this phone? Tap Open in my authenticator app, or copy "
                                    "the key.")
    expect(section).to_contain_text("On a computer? Scan the code with your phone's "
                                    "authenticator app")

    key = page.locator("#totp-secret").inner_text()
    assert re.fullmatch(r"[A-Z2-7]{32}", key), key  # whole, as the app and the tests take it

    opener = section.get_by_role("link", name="Open in my authenticator app")
    address = urlsplit(opener.get_attribute("href"))
    assert address.scheme == "otpauth" and address.netloc == "totp"
    assert parse_qs(address.query)["secret"] == [key]
    assert parse_qs(address.query)["issuer"] == ["Test Portal"]

    copy = section.get_by_role("button", name="Copy the key")
    expect(copy).to_be_visible()
    copy.click()
    expect(section.locator("[data-copy-status]")).to_have_text(
        "Copied. Now paste it into your authenticator app.")
    assert page.evaluate("navigator.clipboard.readText()") == key

    # Two even lines of sixteen, at either width, to read and type.
    lines = section.locator("#totp-secret").evaluate(
        "code => { const r = document.createRange(); r.selectNodeContents(code);"
        " return Array.from(r.getClientRects(), rect => Math.round(rect.width)); }")
    assert len(lines) == 2 and abs(lines[0] - lines[1]) <= 2, lines
    if phone:
        assert_fits_phone(page, "authenticator-app-setup")
    assert_accessible(page, "authenticator-app-setup")
    screenshot(page, "ux-authenticator-app-setup")

    # The key copied is the app's: its code confirms the setup.
    page.fill("#authenticator-app input[name=code]", pyotp.TOTP(key).at(clock.now().timestamp()))
    page.get_by_role("button", name="Confirm and use this app").click()
    expect(page.locator(".flashes")).to_contain_text("Your authenticator app is set up")


def test_without_javascript_there_is_no_copy_button_but_the_rest_is_there(
        live_server, new_context, smtp):
    page = new_context(PHONE, phone=True, javascript=False).new_page()
    _start_setup(page, live_server, smtp)
    section = page.locator("#authenticator-app")
    expect(section.get_by_role("button", name="Copy the key")).to_be_hidden()
    expect(section.get_by_role("link", name="Open in my authenticator app")).to_be_visible()
    expect(section.locator("code.secret")).to_be_visible()
