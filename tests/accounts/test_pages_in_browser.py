"""The account pages in Chromium at 1280 and 390 px: axe, labels, tap targets, screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    DESKTOP, PHONE, assert_accessible, assert_fields_labelled, assert_fits_phone, chromium,
    code_from, live_server, log_in, new_context, screenshot,
)

pytestmark = pytest.mark.browser


class Checker:
    """Axe, labels and a screenshot on every page; on a phone, no sideways scroll, 44 px taps."""

    def __init__(self, viewport: dict) -> None:
        self.phone = viewport["width"] <= 400

    def __call__(self, page, name: str) -> None:
        assert_fields_labelled(page, name)
        if self.phone:
            assert_fits_phone(page, name)
        assert_accessible(page, name)
        screenshot(page, f"accounts-{name}")


def sign_in(page, server, smtp, count: int, email: str = "client@example.com") -> None:
    log_in(page, server, email)
    page.wait_for_url("**/login/code")
    page.fill("input[name=code]", code_from(smtp, count, email))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_devices_page(viewport, live_server, new_context, smtp):
    check = Checker(viewport)
    phone_user_agent = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                        "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36")
    elsewhere = new_context(viewport, user_agent=phone_user_agent).new_page()
    sign_in(elsewhere, live_server, smtp, 1)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in(page, live_server, smtp, 2)
    page.get_by_role("link", name="Your devices").click()
    expect(page.locator("h1")).to_have_text("Your devices")
    expect(page.locator("#signed-in")).to_contain_text("Android 14, phone")
    check(page, "devices")
    page.get_by_role("button", name="Sign out everywhere else").click()
    expect(page.locator(".notice-success")).to_contain_text("everywhere except here")
    expect(page.locator("#signed-in")).not_to_contain_text("Android 14, phone")
    check(page, "devices-signed-out-elsewhere")
    elsewhere.reload()
    expect(elsewhere).to_have_url(live_server("/login?next=%2Fportal"))
