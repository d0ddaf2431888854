"""With JavaScript off, a code page left open in one tab while the client signed in in another
tab of the same browser: its form's CSRF token died with the sign-in's new session. Posting it
said "That page had been open too long, so nothing was sent" over the portal, which reads as
a failure though the client is signed in."""

from __future__ import annotations

from tests.conftest import request_code


def test_a_code_posted_from_an_older_tab_after_signing_in_says_signed_in(user, browser, smtp,
                                                                          deliver):
    code = request_code(browser, smtp, deliver)
    older_tab = browser.csrf_for("/login/code")
    assert browser.enter_code(code).status_code == 302  # the other tab signs in

    answer = browser.post("/login/code", {"code": code, "csrf_token": older_tab})
    assert answer.status_code == 302
    page = browser.client.get(answer.headers["Location"], follow_redirects=True)
    text = page.get_data(as_text=True)
    assert "You are already signed in: you finished signing in in another tab or window." in text
    assert "open too long" not in text
    assert page.request.path == "/portal"


def test_a_page_left_open_while_signed_out_still_says_open_too_long(user, browser):
    browser.get("/login")
    answer = browser.post("/login", {"email": "client@example.com", "password": "x",
                                     "csrf_token": "stale"})
    assert answer.status_code == 302
    text = browser.client.get(answer.headers["Location"]).get_data(as_text=True)
    assert "That page had been open too long, so nothing was sent." in text
