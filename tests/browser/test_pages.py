"""Every page, in every state a client meets, at desktop and phone widths.

Each page is checked with axe-core inside the page (no serious or critical violation), for
labels and linked errors, and on phones for sideways scrolling and tap targets of 44 px.
Screenshots at 1280 and 390 px go to test-artifacts/screenshots (printed at the end of the run).
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from services import clock
from tests.conftest import add_user, user_by_email
from tests.oidc.conftest import authorize_url, pkce, register
from tests.browser.conftest import (
    DESKTOP, PHONE, SMALL_PHONE, assert_accessible, assert_fields_labelled, assert_fits_phone,
    code_from, log_in, screenshot, sign_in_through_pages,
)

pytestmark = pytest.mark.browser

SOON = 8000


class Checker:
    """Runs the checks that suit one viewport on each page it is shown."""

    def __init__(self, viewport: dict) -> None:
        self.width = viewport["width"]
        self.seen: list[str] = []

    def __call__(self, page, name: str) -> None:
        self.seen.append(name)
        assert_fields_labelled(page, name)
        if self.width <= 400:
            assert_fits_phone(page, name)
        if self.width in (DESKTOP["width"], PHONE["width"]):
            assert_accessible(page, name)
            screenshot(page, name)


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE, SMALL_PHONE],
                         ids=lambda v: f"{v['width']}px")
def test_every_page(viewport, live_server, new_context, smtp):
    check = Checker(viewport)
    phone = viewport["width"] <= 400
    context = new_context(viewport, phone=phone)
    page = context.new_page()

    page.goto(live_server("/login"))
    check(page, "login")
    page.locator("[data-login-form] button[type=submit]").click()
    expect(page.locator(".error-summary")).to_be_visible()
    check(page, "login-errors")

    page.goto(live_server("/no-such-page"))
    expect(page.locator("h1")).to_have_text("Page not found")
    check(page, "error-404")

    listening = context.new_page()  # a login tab left open while the client signs in
    listening.goto(live_server("/login"))

    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    expect(page.locator("#delivery-status")).to_contain_text("Sent", timeout=SOON)
    code = code_from(smtp, 1)
    check(page, "code")
    page.get_by_text("Not received a code?").click()
    expect(page.locator("[data-resend-hint]")).to_contain_text("You can ask again in")
    check(page, "code-help")

    expect(listening.locator("#tab-guard")).to_contain_text("another tab")
    check(listening, "login-live-alert")
    listening.close()

    page.fill("input[name=code]", "000000" if code != "000000" else "111111")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("#code-problem")).to_contain_text("not right")
    check(page, "code-wrong")

    page.click("input[name=code]")
    page.go_back()
    expect(page.locator("#back-warning")).to_contain_text("Going back")
    check(page, "code-back-warning")
    page.get_by_role("button", name="Stay and enter my code").click()

    tab = context.new_page()
    tab.goto(live_server("/login"))
    expect(tab.locator('[data-guard="pending"]')).to_be_visible()
    check(tab, "login-guard")
    tab.close()

    clock.advance(timedelta(minutes=2))
    other = new_context(viewport, phone=phone).new_page()
    log_in(other, live_server)
    expect(other.locator("h1")).to_have_text("A code is already on its way")
    check(other, "choice")
    other.get_by_text("Send a new code").click()
    other.get_by_role("button", name="Continue").click()
    other.wait_for_url("**/login/code")

    expect(page.locator("#tab-guard")).to_contain_text("no longer works", timeout=SOON)
    check(page, "code-superseded-live")
    page.reload()
    expect(page.locator("h1")).to_have_text("This code no longer works")
    check(page, "code-superseded")

    other.fill("input[name=code]", code_from(smtp, 2))
    other.get_by_role("button", name="Continue").click()
    other.wait_for_url("**/portal")
    check(other, "portal")
    other.get_by_role("button", name="Log out").click()
    expect(other.locator(".notice-success")).to_contain_text("logged out")
    check(other, "logged-out")

    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    clock.advance(timedelta(minutes=11))
    expect(page.locator("#tab-guard")).to_contain_text("stopped working at", timeout=SOON)
    check(page, "code-expired-live")
    page.reload()
    expect(page.locator("h1")).to_have_text("Your code has run out")
    check(page, "code-expired")

    log_in(page, live_server)
    page.wait_for_url("**/login/code")
    smtp.wait_for(4)
    sent = {mail.code for mail in smtp.messages}
    wrong = [c for c in (f"{n:06d}" for n in range(10)) if c not in sent][:5]
    for attempt in wrong:
        page.fill("input[name=code]", attempt)
        page.get_by_role("button", name="Continue").click()
        if attempt != wrong[-1]:
            expect(page.locator("#code-problem")).to_contain_text("not right")
    expect(page.locator("h1")).to_have_text("This sign-in has been stopped")
    expect(page.locator("#code-problem")).to_contain_text("too many wrong codes")
    check(page, "code-locked")

    texts = new_context(viewport, phone=phone).new_page()
    log_in(texts, live_server, "texts@example.com")
    texts.wait_for_url("**/login/code")
    expect(texts.locator(".lead")).to_contain_text("•••• ••• 123")
    expect(texts.locator("#delivery-status")).to_contain_text("Sent to your mobile network",
                                                              timeout=SOON)
    texts.get_by_text("Not received a code?").click()
    expect(texts.get_by_role("button", name="Send by email instead")).to_be_disabled()
    check(texts, "code-sms")
    texts.goto(live_server("/dev/outbox"))
    # The SMS ends with the WebOTP line, so the phone can offer to fill the code in.
    expect(texts.locator("pre").first).to_contain_text("@localhost #")
    check(texts, "dev-outbox")

    assert len(check.seen) == 19


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_pages_behind_sign_in(viewport, live_server, new_context, smtp):
    """The account page and the support console pass the same checks."""
    check = Checker(viewport)
    add_user(live_server.app, "staff@example.com", role="support")
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, 1, "staff@example.com")

    page.goto(live_server("/account/security"))
    check(page, "account-security")
    # The whole choice box is the tap target: a tap at its far corner picks that option.
    box = page.locator(".choice").filter(has=page.locator("input[value=sms]"))
    size = box.bounding_box()
    box.click(position={"x": size["width"] - 6, "y": size["height"] - 6})
    expect(page.locator("input[value=sms]")).to_be_checked()

    page.goto(live_server("/support"))
    check(page, "support")
    client_id = user_by_email(live_server.app, "client@example.com").id
    page.goto(live_server(f"/support/clients/{client_id}"))
    check(page, "support-client")

    # An app asks for a fresh sign-in (OpenID Connect prompt=login): the login form, with a
    # note saying why, although this browser is signed in.
    rp = register(live_server.app)
    page.goto(live_server(authorize_url(rp, pkce()[1], prompt="login")))
    expect(page.locator(".notice-info")).to_contain_text("Files asks you to sign in again")
    expect(page.locator("input[name=email]")).to_be_visible()
    check(page, "login-sign-in-again")
