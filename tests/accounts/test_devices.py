"""/account/devices: where the client is signed in, recent sign-ins, sign out everywhere else."""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.conftest import request_code, wrong_code


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
