"""The support console and its diagnosis tell passkeys, app codes and trusted devices."""

from __future__ import annotations

import html
from datetime import timedelta

from services import clock
from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with, totp_now
from tests.conftest import Browser, add_user

STAFF = "support@example.com"


def _console(app, sign_in, client_id: int) -> str:
    add_user(app, STAFF, role="support")
    staff = sign_in(STAFF, b=Browser(app))
    return html.unescape(staff.text(f"/support/clients/{client_id}"))


def test_a_phone_clock_that_is_off_and_a_passkey_sign_in(app, client_user, set_up_app, sign_in):
    secret = set_up_app()
    clock.advance(timedelta(seconds=60))
    b = Browser(app)
    b.log_in()
    assert b.enter_code(totp_now(secret, 4)).status_code == 422  # a clock 2 minutes ahead
    assert b.enter_code(totp_now(secret)).status_code == 302
    key = SoftKey()
    add_passkey(b, key, name="Work laptop")
    assert sign_in_with(Browser(app), key).status_code == 200
    page = _console(app, sign_in, client_user)
    assert "Code typed: wrong time" in page
    assert "the phone's clock looks about 2 minutes ahead" in page
    assert "Signed in with a passkey" in page and "“Work laptop”" in page
    assert "passkey “Work laptop”, no password or code" in page
    assert "Codes go by</dt><dd>authenticator app" in page
    assert "Passkey added" in page


def test_a_refused_trusted_device_mark_says_why(app, client_user, smtp, deliver, sign_in):
    b = sign_in()
    b.post("/logout", form_page="/portal")
    b.client.set_cookie("cg-device", "a mark we never made")
    assert b.log_in().location.endswith("/login/code")
    page = _console(app, sign_in, client_user)
    assert "Trusted-device mark refused" in page
    assert "The device's mark is not one we know" in page
