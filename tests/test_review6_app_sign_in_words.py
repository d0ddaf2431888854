"""A sign-in waiting for the code of an authenticator app sends nothing, so the pages that
speak of it (the login page after Back or "Start again", the keep-or-new question asked in
another browser, the code page of a sign-in it replaced) must not say a code was sent to an
address: they said "We sent a code at 10:19 to ." with no address at all."""

from __future__ import annotations

import re

from services import clock
from tests.authenticators.conftest import give_confirmed_app
from tests.conftest import Browser


def _words(html: str) -> str:
    html = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html)).strip()
    return re.sub(r" ([.,])", r"\1", text)  # "<strong>app</strong>." reads "app."


def _app_sign_in_started(app) -> tuple[Browser, str]:
    """A browser that gave the password of an account with an app; when (HH:MM)."""
    give_confirmed_app(app)
    b = Browser(app)
    assert b.log_in().location.endswith("/login/code")
    with app.app_context():
        return b, clock.hhmm(clock.now())


def test_the_login_page_after_back_does_not_speak_of_a_code_sent(app, user):
    b, sent = _app_sign_in_started(app)

    page = _words(b.text("/login"))  # Back, or "Start again"
    assert " to. " not in page and "sent a code" not in page, page
    assert "on its way" not in page and "Send me a new code" not in page
    assert "You have already started signing in" in page
    assert f"At {sent} you gave your password, and we asked for the code from your " \
           "authenticator app." in page
    assert "Enter the code from your app" in page


def test_the_question_in_another_browser_does_not_speak_of_a_code_sent(app, user):
    _, sent = _app_sign_in_started(app)  # the first browser

    second = Browser(app)
    assert second.log_in().location.endswith("/login")
    page = _words(second.text("/login"))
    assert " to. " not in page and "sent a code" not in page and "on its way" not in page, page
    assert "with the code from your authenticator app" in page
    assert f"You started signing in somewhere else (another window, tab or device) at " \
           f"{sent}" in page
    # Either answer still works as before.
    kept = second.post("/login", {"action": "keep", "nonce": re.search(
        r'name="nonce"[^>]*value="([^"]+)"', second.text("/login")).group(1)},
        form_page="/login")
    assert kept.location.endswith("/login/code")


def test_a_sign_in_replaced_by_an_app_sign_in_says_what_replaced_it(app, user):
    give_confirmed_app(app)
    first = Browser(app)
    first.log_in()
    second = Browser(app)
    second.log_in()
    nonce = re.search(r'name="nonce"[^>]*value="([^"]+)"', second.text("/login")).group(1)
    assert second.post("/login", {"action": "new", "nonce": nonce},
                       form_page="/login").location.endswith("/login/code")

    page = _words(first.text("/login/code"))
    assert "This code no longer works" in page
    assert "sent a code to." not in page and "went to." not in page, page
    assert "which asks for the code from your authenticator app" in page
    status = first.get("/login/code/status").get_json()
    assert status["newer"]["channel"] == "totp"
