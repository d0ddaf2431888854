"""The account pages in Chromium at 1280 and 390 px: axe, labels, tap targets, screenshots."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    DESKTOP, PHONE, assert_accessible, assert_fields_labelled, assert_fits_phone, chromium,
    live_server, new_context, screenshot, sign_in_through_pages,
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


def link_from(smtp, count: int, email: str, part: str) -> str:
    """The absolute link (under PORTAL_URL, the live server) in the newest message to `email`."""
    from tests.accounts.conftest import link_in

    smtp.wait_for(count)
    return link_in(smtp.last_to(email).text, part)


NEW_PASSWORD = "plum tree by the river"


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_client_account_pages(viewport, live_server, new_context, smtp):
    """Forgotten password, reset, change password, change email, and links that failed."""
    check = Checker(viewport)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()

    page.goto(live_server("/login"))
    page.get_by_role("link", name="Forgotten your password?").click()
    expect(page.locator("h1")).to_have_text("Forgotten your password?")
    check(page, "forgot")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator(".error-summary")).to_be_visible()
    check(page, "forgot-errors")
    page.fill("input[name=email]", "client@example.com")
    page.get_by_role("button", name="Send me a link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    check(page, "forgot-sent")

    reset_link = link_from(smtp, 1, "client@example.com", "/password/reset/")
    page.goto(reset_link)
    expect(page.locator("h1")).to_have_text("Choose a new password")
    check(page, "reset")
    for box in page.locator("input[type=password]").all():
        box.fill("password1234")
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator(".error-summary")).to_contain_text("most often")
    check(page, "reset-weak")
    for box in page.locator("input[type=password]").all():
        box.fill(NEW_PASSWORD)
    page.get_by_role("button", name="Save my new password").click()
    expect(page.locator(".notice-success")).to_contain_text("Your password is saved")
    page.goto(reset_link)
    expect(page.locator("h1")).to_have_text("This link has already been used")
    check(page, "link-used")

    smtp.wait_for(2)  # the notice that the password changed
    phone_user_agent = ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 "
                        "(KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36")
    elsewhere = new_context(viewport, user_agent=phone_user_agent).new_page()
    sign_in_through_pages(elsewhere, live_server, smtp, 3, password=NEW_PASSWORD)
    sign_in_through_pages(page, live_server, smtp, 4, password=NEW_PASSWORD)

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
    page.goto(live_server("/account/password"))
    expect(page.locator("h1")).to_have_text("Change your password")
    page.fill("input[name=current_password]", "not my password at all")
    page.fill("input[name=password]", "another good phrase here")
    page.fill("input[name=confirm]", "another good phrase here")
    page.get_by_role("button", name="Change my password").click()
    expect(page.locator(".error-summary")).to_contain_text("not right")
    check(page, "change-password-wrong")

    page.goto(live_server("/account/email"))
    page.fill("input[name=email]", "new@example.com")
    page.fill("input[name=current_password]", NEW_PASSWORD)
    page.get_by_role("button", name="Send a link to the new address").click()
    expect(page.locator(".notice-success")).to_contain_text("We have sent a link")
    check(page, "change-email-sent")
    link = link_from(smtp, 5, "new@example.com", "/account/email/confirm/")
    # Opened on another device, not signed in: the password is asked as well.
    elsewhere = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    elsewhere.goto(link)
    expect(elsewhere.locator("input[name=current_password]")).to_be_visible()
    elsewhere.get_by_role("button", name="Yes, use new@example.com").click()
    expect(elsewhere.locator(".error-summary")).to_contain_text("Enter your password")
    check(elsewhere, "change-email-confirm-elsewhere")
    elsewhere.close()
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Confirm your new email address")
    expect(page.locator("input[name=current_password]")).to_have_count(0)
    check(page, "change-email-confirm")
    page.get_by_role("button", name="Yes, use new@example.com").click()
    expect(page.locator(".notice-success")).to_contain_text("you now sign in with new@example.com")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_console_account_pages_and_welcome(viewport, live_server, new_context, smtp):
    """Staff invite, import, list invitations, manage roles, switch off; a client accepts."""
    from tests.conftest import add_user

    check = Checker(viewport)
    phone = viewport["width"] <= 400
    add_user(live_server.app, "admin@example.com", role="admin")
    add_user(live_server.app, "support@example.com", role="support")
    page = new_context(viewport, phone=phone).new_page()
    sign_in_through_pages(page, live_server, smtp, 1, "admin@example.com")

    page.goto(live_server("/support"))
    page.get_by_role("link", name="Add a client").click()
    expect(page.locator("h1")).to_have_text("Add a client")
    check(page, "support-new-client")
    page.fill("input[name=email]", "anna@example.com")
    page.fill("input[name=name]", "Anna Smith")
    page.fill("input[name=phone]", "+33 6 12 34 56 78")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.locator(".error-summary")).to_contain_text("not a UK number")
    check(page, "support-new-client-errors")
    page.fill("input[name=phone]", "07400 123456")
    page.get_by_role("button", name="Send the invitation").click()
    expect(page.locator(".notice-success")).to_contain_text("Invitation sent to anna@example.com")
    check(page, "support-client-invited")

    page.goto(live_server("/support/clients/import"))
    check(page, "support-import")
    page.fill("textarea[name=text]", "email,name,phone\nbob@example.com,Bob,\nnot-an-address,X,\n"
                                     "anna@example.com,Anna again,\n")
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator("#preview")).to_contain_text("Nothing has been imported")
    check(page, "support-import-problems")
    page.fill("textarea[name=text]", "email,name,phone\nbob@example.com,Bob,\n"
                                     "cleo@example.com,Cleo,07400 654321\n")
    page.get_by_role("button", name="Check the file").click()
    expect(page.locator("#preview")).to_contain_text("Ready to invite 2 clients")
    check(page, "support-import-preview")
    page.get_by_role("button", name="Invite these 2 clients").click()
    expect(page.locator("h1")).to_have_text("Invitations not yet accepted")
    expect(page.locator("table")).to_contain_text("cleo@example.com")
    check(page, "support-invitations")

    page.goto(live_server("/support/staff"))
    check(page, "support-staff")
    page.get_by_role("link", name="Change role").first.click()
    expect(page.locator("h1")).to_contain_text("Role of")
    check(page, "support-staff-role")

    page.goto(live_server("/support?q=client"))
    page.get_by_role("link", name="client@example.com").click()
    page.get_by_role("link", name="Switch the account off…").click()
    expect(page.locator("h1")).to_have_text("Switch the account off")
    check(page, "support-deactivate")

    welcome = new_context(viewport, phone=phone).new_page()
    welcome.goto(link_from(smtp, 2, "anna@example.com", "/welcome/"))
    expect(welcome.locator("h1")).to_have_text("Welcome, Anna Smith")
    check(welcome, "welcome")
    for box in welcome.locator("input[type=password]").all():
        box.fill(NEW_PASSWORD)
    welcome.get_by_role("button", name="Save my password").click()
    expect(welcome.locator(".notice-success")).to_contain_text("Your password is saved")
