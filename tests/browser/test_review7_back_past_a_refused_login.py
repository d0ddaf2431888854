"""Back from the code page when the password was wrong once first. A wrong password is
answered on the page the form was posted to, so that page was a POST in the tab's history:
"Go back anyway" (or Back, or the bfcache's reload) reached it as Chromium's "Confirm Form
Resubmission" (ERR_CACHE_MISS) page, which a client cannot make sense of (seventh review)."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, go_back_anyway, log_in

pytestmark = pytest.mark.browser


def test_go_back_anyway_past_a_wrong_password_reaches_a_login_page(
        live_server, new_context, smtp):
    page = new_context(PHONE, phone=True).new_page()
    page.goto(live_server("/login"))
    log_in(page, live_server, password="not the password at all")
    expect(page.locator("[role=alert]").first).to_contain_text("not right")
    log_in(page, live_server)  # the same page, the right password this time
    page.wait_for_url("**/login/code")
    sent_at = page.locator("[data-code-page]").get_attribute("data-sent-at")

    go_back_anyway(page, sent_at)
    expect(page.locator("input[name=email]")).to_be_visible()
