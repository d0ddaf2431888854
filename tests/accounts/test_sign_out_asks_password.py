"""Ending sessions from /account/devices asks for the password when the sign-in is over 10
minutes old (ASVS 7.5.2), as removing a passkey does: someone at a browser left signed in
must not sign the client out everywhere else, nor one device of theirs. Within 10 minutes of
signing in it is one click, as before."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest

from services import clock
from tests.conftest import TEST_PASSWORD

DEVICES = "/account/devices"


@pytest.fixture
def later():
    """Call after signing in: eleven minutes on, so that changes ask for the password."""
    yield lambda: clock.advance(timedelta(minutes=11))
    clock.reset()


def _other_session(page: str) -> int:
    """The one session on the page that is not this browser's."""
    others = [int(n) for n, this in re.findall(
        r'data-session="(\d+)" id="device-\d+">\s*<p class="device-name"><strong>[^<]*</strong>'
        r'( <span class="badge badge-ok">This device</span>)?', page) if not this]
    assert len(others) == 1, others
    return others[0]


def test_sign_out_everywhere_else_asks_for_the_password_after_ten_minutes(
        user, sign_in, phone, desktop, later):
    sign_in(b=phone)
    sign_in(b=desktop)
    with_form = desktop.text(DEVICES)  # within 10 minutes: one click
    assert 'action="/account/devices/sign-out-others"' in with_form
    later()
    page = desktop.text(DEVICES)
    # The first step is a link to the step that asks; no form, no password box yet.
    assert 'href="/account/devices?sign_out=others"' in page
    assert 'action="/account/devices/sign-out-others"' not in page
    step = desktop.text(f"{DEVICES}?sign_out=others")
    assert 'id="sign-out-others-password"' in step and "autofocus" in step
    token = desktop.last_csrf

    answer = desktop.post("/account/devices/sign-out-others", {"csrf_token": token})
    assert answer.status_code == 302
    assert answer.headers["Location"].endswith("/account/devices?sign_out=others")
    told = desktop.text(answer.headers["Location"])
    assert "Enter your password to make this change" in told
    assert phone.get("/portal").status_code == 200  # still signed in there

    answer = desktop.post("/account/devices/sign-out-others",
                          {"csrf_token": token, "password": "not the password"})
    assert "That password is not right. Nothing has changed." in desktop.text(
        answer.headers["Location"])
    assert phone.get("/portal").status_code == 200

    answer = desktop.post("/account/devices/sign-out-others",
                          {"csrf_token": token, "password": TEST_PASSWORD})
    assert answer.status_code == 302
    assert "You are now signed out everywhere except here." in desktop.text(DEVICES)
    assert phone.get("/portal").status_code == 302


def test_sign_out_this_device_asks_for_the_password_after_ten_minutes(
        user, sign_in, phone, desktop, later):
    sign_in(b=phone)
    sign_in(b=desktop)
    later()
    page = desktop.text(DEVICES)
    other = _other_session(page)
    assert f'href="/account/devices?sign_out={other}"' in page
    step = desktop.text(f"{DEVICES}?sign_out={other}")
    assert f'id="sign-out-password-{other}"' in step
    token = desktop.last_csrf

    answer = desktop.post(f"/account/devices/{other}/sign-out", {"csrf_token": token})
    assert answer.headers["Location"].endswith(f"/account/devices?sign_out={other}")
    assert phone.get("/portal").status_code == 200

    answer = desktop.post(f"/account/devices/{other}/sign-out",
                          {"csrf_token": token, "password": TEST_PASSWORD})
    assert "That device is now signed out" in desktop.text(answer.headers["Location"])
    assert phone.get("/portal").status_code == 302
