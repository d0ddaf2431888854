"""/account/devices in Chromium at 1280 and 390 px, with passkeys and an email change waiting:
axe, labels, tap targets, screenshots; and removing a passkey there after ten minutes."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from playwright.sync_api import expect

from extensions import db
from models import Passkey
from services import clock
from tests.accounts.test_pages_in_browser import Checker
from tests.browser.conftest import (  # noqa: F401  (fixtures used by name)
    DESKTOP, PHONE, chromium, live_server, new_context, sign_in_through_pages,
)
from tests.conftest import TEST_PASSWORD, user_by_email

pytestmark = pytest.mark.browser


def _passkey(app, name: str, days_ago: int) -> None:
    """A passkey row as adding one leaves it (adding one through WebAuthn is tested in
    tests/browser/test_passkeys.py)."""
    user_id = user_by_email(app, "client@example.com").id
    with app.app_context():
        db.session.add(Passkey(user_id=user_id, credential_id=f"credential-{name}",
                               public_key=b"\x00", user_handle="handle", name=name,
                               created_at=clock.now() - timedelta(days=days_ago)))
        db.session.commit()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_devices_page_lists_passkeys_and_a_change_waiting(viewport, live_server, new_context,
                                                          smtp):
    check = Checker(viewport)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, 1)
    _passkey(live_server.app, "Work laptop", 30)
    _passkey(live_server.app, "A phone I have never seen", 0)
    page.goto(live_server("/account/email"))
    page.fill("input[name=email]", "new.address@example.com")
    page.fill("input[name=current_password]", TEST_PASSWORD)
    page.get_by_role("button", name="Send a link to the new address").click()

    page.goto(live_server("/account/devices"))
    expect(page.locator("#signed-in .notice-warning")).to_contain_text("new.address@example.com")
    expect(page.locator("#passkeys")).to_contain_text("A phone I have never seen")
    expect(page.locator("#passkeys")).to_contain_text("Added")
    check(page, "devices-passkeys")

    clock.advance(timedelta(minutes=11))  # now removing one asks for the password
    page.reload()
    unknown = re.compile("Remove the passkey A phone I have never seen")
    page.get_by_role("link", name=unknown).click()
    expect(page.locator("#passkeys input[type=password]")).to_be_visible()
    check(page, "devices-passkey-password")
    page.fill("#passkeys input[type=password]", TEST_PASSWORD)
    page.get_by_role("button", name=unknown).click()
    expect(page.locator(".notice-success")).to_contain_text("We have removed the passkey")
    page.goto(live_server("/account/devices"))
    expect(page.locator("#passkeys")).not_to_contain_text("A phone I have never seen")
    expect(page.locator("#passkeys")).to_contain_text("Work laptop")


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_one_other_device_is_signed_out_from_its_row(viewport, live_server, new_context, smtp):
    check = Checker(viewport)
    elsewhere = new_context(DESKTOP).new_page()
    sign_in_through_pages(elsewhere, live_server, smtp, 1)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, 2)
    page.goto(live_server("/account/devices"))
    signed_in = page.locator("#signed-in")
    expect(signed_in.get_by_role("button", name=re.compile("^Sign out"))).to_have_count(2)
    check(page, "devices-two")
    signed_in.get_by_role("button", name=re.compile("^Sign out this device: HeadlessChrome")).click()
    expect(page.locator(".notice-success")).to_contain_text("That device is now signed out")
    expect(signed_in.locator(".device")).to_have_count(1)
    elsewhere.goto(live_server("/portal"))
    expect(elsewhere).to_have_url(re.compile("/login"))


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_after_ten_minutes_signing_out_elsewhere_asks_for_the_password(
        viewport, live_server, new_context, smtp):
    check = Checker(viewport)
    elsewhere = new_context(DESKTOP).new_page()
    sign_in_through_pages(elsewhere, live_server, smtp, 1)
    page = new_context(viewport, phone=viewport["width"] <= 400).new_page()
    sign_in_through_pages(page, live_server, smtp, 2)
    clock.advance(timedelta(minutes=11))
    page.goto(live_server("/account/devices"))
    page.get_by_role("link", name="Sign out everywhere else").click()
    box = page.locator("#sign-out-others-password")
    expect(box).to_be_focused()
    check(page, "devices-sign-out-password")
    box.fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign out everywhere else").click()
    expect(page.locator(".notice-success")).to_contain_text("signed out everywhere except here")
    elsewhere.goto(live_server("/portal"))
    expect(elsewhere).to_have_url(re.compile("/login"))
