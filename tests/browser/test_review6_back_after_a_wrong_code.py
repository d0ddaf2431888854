"""Back from the code page after a code that did not work. Each code typed loads the page
again, a new entry in the tab's history; "Go back anyway" (or a second Back) went back only to
the earlier copy of the code page, which then warned again, so the client had to choose to leave
once for every code typed before reaching the login page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import PHONE, code_from, go_back_anyway, log_in

pytestmark = pytest.mark.browser


def _wrong_codes(page, smtp, how_many: int) -> None:
    right = code_from(smtp, 1)
    for n in range(how_many):
        wrong = f"{(int(right) + 1 + n) % 1000000:06d}"
        page.fill("input[name=code]", wrong)
        page.get_by_role("button", name="Continue").click()
        expect(page.locator("#code-problem")).to_contain_text(f"You have {4 - n} tries left")
        page.wait_for_load_state("load")


def test_go_back_anyway_after_wrong_codes_reaches_the_login_page(
        live_server, new_context, smtp):
    page = new_context(PHONE, phone=True).new_page()
    page.goto(live_server("/login"))
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    sent_at = page.locator("[data-code-page]").get_attribute("data-sent-at")
    _wrong_codes(page, smtp, 2)

    go_back_anyway(page, sent_at)


def test_a_second_back_after_a_wrong_code_leaves_and_stay_still_stays(
        live_server, new_context, smtp):
    page = new_context().new_page()
    page.goto(live_server("/login"))
    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    _wrong_codes(page, smtp, 1)

    page.go_back()
    warning = page.locator("#back-warning")
    expect(warning).to_contain_text("Going back will not bring a new code")
    warning.get_by_role("button", name="Stay and enter my code").click()
    expect(page.locator("input[name=code]")).to_be_focused()

    page.go_back()  # the first press warns again
    expect(warning).to_contain_text("Going back will not bring a new code")
    page.go_back()  # the second leaves, past the earlier copy of the page
    page.wait_for_url("**/login")
    expect(page.locator('[data-guard="pending"]')).to_be_visible()

    # Forward again to the code page is not turned back.
    page.go_forward()
    page.wait_for_url("**/login/code")
    page.wait_for_timeout(1000)
    assert page.url.endswith("/login/code")
    page.fill("input[name=code]", code_from(smtp, 1))
    page.get_by_role("button", name="Continue").click()
    page.wait_for_url("**/portal")
