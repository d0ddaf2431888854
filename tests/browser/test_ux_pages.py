"""Pages that tell a client to contact the firm, or what else they can do, in real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, assert_fits_phone, screenshot

pytestmark = pytest.mark.browser

CONTACT = "call 020 7946 0000 or email help@smithco.co.uk"


def test_the_firms_number_is_never_broken_across_lines(live_server, new_context):
    live_server.app.config["PORTAL_CONTACT"] = CONTACT
    page = new_context(PHONE, phone=True).new_page()
    page.goto(live_server("/password/forgot"))
    page.fill("input[name=email]", "someone@example.com")
    page.get_by_role("button", name="Send me a link").click()
    number = page.get_by_role("link", name="020 7946 0000")
    expect(number).to_have_attribute("href", "tel:02079460000")
    # At 390 px the sentence breaks just there: the number goes whole to the next line.
    assert number.evaluate("link => link.getClientRects().length") == 1
    assert_fits_phone(page, "forgot-sent")
    screenshot(page, "ux-forgot-sent")
