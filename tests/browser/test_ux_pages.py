"""Pages that tell a client to contact the firm, or what else they can do, in real Chromium."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    PHONE, assert_accessible, assert_fits_phone, screenshot, sign_in_through_pages,
)

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


def test_log_out_on_an_apps_refusal_looks_like_a_button_that_works(live_server, new_context,
                                                                    smtp):
    """The Log out of "You cannot open this app" and the other refusals of an app's sign-in
    (templates/oidc/refused.html) was the browser's grey, and looked switched off."""
    page = new_context(PHONE, phone=True).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    page.goto(live_server("/oauth/logout?id_token_hint=not-a-token"))
    expect(page.locator("h1")).to_have_text("This sign-out request did not work")
    log_out = page.locator("main").get_by_role("button", name="Log out")
    portal = page.get_by_role("link", name="Go to your portal")
    look = "el => { const s = getComputedStyle(el); return [s.backgroundColor, s.color," \
        " s.borderTopColor, s.borderTopWidth, s.fontWeight]; }"
    assert log_out.evaluate(look) == portal.evaluate(look)  # the secondary button's look
    assert log_out.evaluate(look)[0] == "rgb(255, 255, 255)"
    assert_fits_phone(page, "oidc-refused")
    assert_accessible(page, "oidc-refused")
    screenshot(page, "ux-oidc-refused")
    log_out.click()
    page.wait_for_url("**/login")
