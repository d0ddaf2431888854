"""Fewer codes in a real browser: a passkey made and used through Chromium's virtual
authenticator (DevTools protocol), an authenticator app set up from the secret on the page, the
"don't ask again on this device" box, and every new page at 1280 and 390 px with axe.

WebAuthn needs a secure context and a domain name, so the server is addressed as
http://localhost:<port> (not 127.0.0.1) and PORTAL_URL says the same.
"""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from extensions import db
from models import AuthSession
from services import clock
from tests.conftest import TEST_PASSWORD
from tests.browser.conftest import (
    DESKTOP, PHONE, code_from, log_in, look,
)

pytestmark = pytest.mark.browser


@pytest.fixture
def server(live_server):
    """The live server, addressed as http://localhost:<port> with PORTAL_URL to match."""
    assert live_server.url.startswith("http://localhost:")
    assert live_server.app.config["PORTAL_URL"] == live_server.url
    return live_server


def virtual_authenticator(context, page) -> None:
    """A platform authenticator with resident keys that verifies its user (a fingerprint)."""
    cdp = context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True,
    }})


def sign_in_by_email(page, server, smtp, *, remember: bool = False) -> None:
    count = len(smtp.messages) + 1
    log_in(page, server)
    expect(page.locator("h1")).to_have_text("Enter your code")
    page.fill("input[name=code]", code_from(smtp, count))
    if remember:
        page.locator("label[for=remember]").click()
    page.locator("[data-code-form] button[type=submit]").click()
    expect(page).to_have_url(server("/portal"))


def newest_amr(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(AuthSession.amr).order_by(AuthSession.id.desc())).first()


def test_a_passkey_is_made_and_then_signs_in_alone(server, new_context, smtp):
    context = new_context(DESKTOP)
    page = context.new_page()
    virtual_authenticator(context, page)
    sign_in_by_email(page, server, smtp)

    page.goto(server("/account/security"))
    look(page, "account-security-fewer-codes")
    page.fill("input[name=name]", "Work laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator(".flashes")).to_contain_text("Your passkey “Work laptop” is ready")
    expect(page.locator("#passkeys")).to_contain_text("Not used yet.")
    look(page, "account-security-passkey-added")

    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(server("/login"))
    look(page, "login-with-passkey")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page).to_have_url(server("/portal"))
    assert newest_amr(server.app) == ["hwk", "user", "mfa"]
    page.goto(server("/account/security"))
    expect(page.locator("#passkeys")).to_contain_text("Last used")

    # Removing it later asks for the password, on that passkey's row only.
    clock.advance(timedelta(minutes=11))
    page.goto(server("/account/security"))
    page.get_by_role("link", name="Remove the passkey Work laptop").click()
    look(page, "passkey-remove-password")
    page.locator("#passkeys li.item input[type=password]").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Remove the passkey Work laptop").click()
    expect(page.locator(".flashes")).to_contain_text("We have removed the passkey “Work laptop”")
    expect(page.locator("#passkeys")).to_contain_text("You have no passkeys yet.")


def test_a_browser_without_passkeys_is_told_and_keeps_the_usual_sign_in(server, new_context):
    context = new_context(DESKTOP)
    context.add_init_script("delete window.PublicKeyCredential;")
    page = context.new_page()
    page.goto(server("/login"))
    expect(page.locator("#passkey-message")).to_have_text(
        "This browser cannot use passkeys. Sign in with your email and password above instead.")
    expect(page.get_by_role("button", name="Sign in with a passkey")).to_be_disabled()
    expect(page.locator("[data-login-form] input[name=email]")).to_be_editable()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=lambda v: f"{v['width']}px")
def test_authenticator_app_and_a_trusted_device(viewport, server, new_context, smtp):
    suffix = "" if viewport is DESKTOP else "-phone"
    context = new_context(viewport, phone=viewport is PHONE)
    page = context.new_page()
    log_in(page, server)
    look(page, "code-page-remember" + suffix)
    page.fill("input[name=code]", code_from(smtp, 1))
    page.locator("[data-code-form] button[type=submit]").click()
    expect(page).to_have_url(server("/portal"))

    page.goto(server("/account/security"))
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    expect(page.locator("img.qr")).to_be_visible()
    look(page, "authenticator-app-setup" + suffix)
    page.fill("#authenticator-app input[name=code]",
              pyotp.TOTP(secret).at(clock.now().timestamp()))
    page.get_by_role("button", name="Confirm and use this app").click()
    expect(page.locator(".flashes")).to_contain_text("Your authenticator app is set up")
    expect(page.locator("#current-channel")).to_contain_text("authenticator app")

    page.get_by_role("button", name="Log out").click()
    clock.advance(timedelta(seconds=30))  # the app's next code
    log_in(page, server)
    expect(page.locator(".lead")).to_contain_text("authenticator app")
    look(page, "code-page-authenticator-app" + suffix)
    page.fill("input[name=code]", pyotp.TOTP(secret).at(clock.now().timestamp()))
    page.locator("label[for=remember]").click()  # the whole box is the tap target
    expect(page.locator("input[name=remember]")).to_be_checked()
    page.locator("[data-code-form] button[type=submit]").click()
    expect(page).to_have_url(server("/portal"))
    assert newest_amr(server.app) == ["pwd", "otp", "mfa"]

    page.goto(server("/account/devices"))
    expect(page.locator("#trusted-devices")).to_contain_text("Chrome")
    look(page, "devices-trusted" + suffix)
    page.get_by_role("button", name="Log out").click()
    log_in(page, server)  # the password, and no code on this device
    expect(page).to_have_url(server("/portal"))
    assert newest_amr(server.app) == ["pwd"]
