"""/account/devices: where the client is signed in, recent sign-ins, sign out everywhere else."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import Event
from services import clock
from tests.conftest import Browser, add_user, request_code, wrong_code


def test_devices_lists_each_browser_in_words_and_marks_this_one(app, user, sign_in, phone,
                                                                 desktop):
    sign_in(b=phone)
    sign_in(b=desktop)
    page = desktop.text("/account/devices")
    assert "Chrome Mobile 120 on Android 14, phone" in page
    assert "Chrome 120 on Windows 10, computer" in page
    assert page.count("This device") == 1
    # This device comes first: the desktop browser is the one looking.
    assert page.index("This device") < page.index("Android")
    assert "127.0.0.1" in page


def test_recent_sign_ins_say_how_each_ended(app, user, smtp, deliver, sign_in, phone, desktop):
    code = request_code(phone, smtp, deliver)
    phone.enter_code(wrong_code(code))  # a wrong code does not end the sign-in
    clock.advance(timedelta(minutes=11))  # the code runs out, unused
    try:
        sign_in(b=desktop)
        page = desktop.text("/account/devices")
    finally:
        clock.reset()
    recent = page[page.index("Recent sign-ins"):]
    assert recent.index("Signed in") < recent.index("The code was not entered in time")
    assert "Chrome Mobile 120 on Android 14, phone" in recent


def test_sign_out_everywhere_else_ends_other_sessions_and_pending_sign_ins(
        app, user, smtp, deliver, sign_in, phone, desktop, browser):
    sign_in(b=phone)
    sign_in(b=desktop)
    waiting = request_code(browser, smtp, deliver)  # a third browser, half-way through
    response = desktop.post("/account/devices/sign-out-others", form_page="/account/devices")
    assert response.status_code == 302
    page = desktop.text("/account/devices")
    assert "signed out everywhere except here" in page
    assert "Android" not in page[:page.index("Recent sign-ins")]
    # The phone's session is over; the desktop's is not.
    assert phone.get("/portal").status_code == 302
    assert desktop.get("/portal").status_code == 200
    # The code sent to the half-way browser no longer works.
    answer = browser.enter_code(waiting)
    assert answer.status_code != 302 or "/portal" not in answer.headers.get("Location", "")


def test_sign_out_others_needs_the_form_and_a_session(app, user, sign_in, desktop, browser):
    assert browser.get("/account/devices").status_code == 302  # to the login page
    sign_in(b=desktop)
    forged = desktop.client.post("/account/devices/sign-out-others", data={})
    assert forged.status_code in (302, 400)
    assert desktop.get("/portal").status_code == 200


def test_account_pages_link_to_password_email_and_devices(app, user, sign_in):
    b = sign_in()
    for page in ("/portal", "/account/security"):
        text = b.text(page)
        for path in ("/account/password", "/account/email", "/account/devices"):
            assert f'href="{path}' in text, (page, path)


def _session_ids(page: str) -> list[int]:
    """The sessions the devices page offers to sign out (all but the browser looking)."""
    return [int(n) for n in re.findall(r"/account/devices/(\d+)/sign-out", page)]


def test_sign_out_one_device_ends_that_session_only(app, user, sign_in, phone, desktop, browser):
    sign_in(b=phone)
    sign_in(b=browser)
    sign_in(b=desktop)
    page = desktop.text("/account/devices")
    assert "Sign out this device" in page
    others = _session_ids(page)
    assert len(others) == 2  # not this one: "Sign out everywhere else" is for that, and logout
    phone_page = phone.text("/account/devices")
    [phone_session] = set(others) - set(_session_ids(phone_page))  # the one the phone lacks
    answer = desktop.post(f"/account/devices/{phone_session}/sign-out",
                          form_page="/account/devices")
    assert answer.status_code == 302
    assert "That device is now signed out" in desktop.text("/account/devices")
    assert phone.get("/portal").status_code == 302
    assert browser.get("/portal").status_code == 200 and desktop.get("/portal").status_code == 200
    again = desktop.post(f"/account/devices/{phone_session}/sign-out",
                         form_page="/account/devices")
    assert again.status_code == 302
    assert "already signed out. Nothing has changed" in desktop.text("/account/devices")
    with app.app_context():
        assert db.session.scalar(select(Event.detail).where(
            Event.type == "signed_out_device")) == {"session_id": phone_session}


def test_no_one_signs_out_their_own_device_or_another_account_s_this_way(app, user, sign_in,
                                                                         desktop, phone):
    sign_in(b=desktop)
    add_user(app, "other@example.com")
    other = sign_in("other@example.com", b=Browser(app))
    sign_in(b=phone)
    [desktop_session] = _session_ids(phone.text("/account/devices"))
    # Another account cannot end this client's session by its number.
    other.post(f"/account/devices/{desktop_session}/sign-out", form_page="/account/devices")
    assert desktop.get("/portal").status_code == 200
    # Nor does the desktop end itself by its own number (logout does that).
    desktop.post(f"/account/devices/{desktop_session}/sign-out", form_page="/account/devices")
    assert desktop.get("/portal").status_code == 200
    # Without the form's token nothing happens.
    forged = phone.client.post(f"/account/devices/{desktop_session}/sign-out", data={})
    assert forged.status_code in (302, 400)
    assert desktop.get("/portal").status_code == 200
