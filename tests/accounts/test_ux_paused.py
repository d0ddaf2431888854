"""A paused account is not a dead end: the login and code pages say a new password ends the
pause and link to it (true: tests/accounts/test_links_lift_lock.py), instead of a "Sign in
again" that meets the same refusal; and they reveal no more than before."""

from __future__ import annotations

import re
from datetime import timedelta

from services import clock
from services.signin import limits
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser, request_code, wrong_code

CLIENT = "client@example.com"
NEW = "plum tree by the river"
SET_A_NEW_PASSWORD = '<a class="button button-primary" href="/password/forgot">Set a new password</a>'


def _words(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _lock_with_wrong_codes(b: Browser, smtp, deliver):
    """Nine wrong passwords, then the right one and a wrong code: the tenth failure."""
    for attempt in range(limits.FAILURES_BEFORE_LOCK - 1):
        b.log_in(CLIENT, f"not my password {attempt}")
    code = request_code(b, smtp, deliver)
    return b.enter_code(wrong_code(code))


def test_the_right_password_while_paused_offers_a_new_password_that_works(
        app, user, smtp, deliver):
    b = Browser(app)
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        b.log_in(CLIENT, f"not my password {attempt}")
    answer = b.log_in(CLIENT)
    assert answer.status_code == 429
    page = answer.get_data(as_text=True)
    assert "signing in to this account is paused until" in page
    assert ("You can try again then, or set a new password now: the link we email you ends "
            "the pause.") in _words(page)
    assert SET_A_NEW_PASSWORD in page
    assert "If you need help, please contact us." in _words(page)
    assert "If you need to sign in sooner" not in page

    # The way offered works: the link it sends ends the pause, and the client is in.
    count = len(smtp.messages)
    b.post("/password/forgot", {"email": CLIENT})
    deliver()
    smtp.wait_for(count + 1)
    reset = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    assert b.post(reset, {"password": NEW, "confirm": NEW}).status_code == 302
    assert b.log_in(CLIENT, NEW).headers["Location"] == "/login/code"


def test_the_code_page_of_a_paused_account_offers_no_sign_in_again(app, user, smtp, deliver):
    b = Browser(app)
    answer = _lock_with_wrong_codes(b, smtp, deliver)
    assert answer.status_code == 429
    for page in (answer.get_data(as_text=True), b.text("/login/code")):  # posted, then reloaded
        assert ">Signing in is paused</h1>" in page
        assert "signing in to this account is paused until" in page
        assert SET_A_NEW_PASSWORD in page
        assert 'href="/login">Sign in again' not in page
        assert "Too many wrong codes were entered" not in page
    status = b.get("/login/code/status").get_json()
    assert status["status"] == "locked" and re.fullmatch(r"\d\d:\d\d",
                                                          status["paused_until_local"])


def test_once_the_pause_is_over_the_code_page_offers_to_sign_in_again(app, user, smtp, deliver):
    b = Browser(app)
    _lock_with_wrong_codes(b, smtp, deliver)
    clock.advance(limits.LOCK_DELAYS[0] + timedelta(seconds=1))
    page = b.text("/login/code")
    assert 'href="/login">Sign in again' in page and "paused" not in page
    assert b.get("/login/code/status").get_json()["paused_until_local"] is None


def test_the_paused_address_page_offers_the_same_to_anyone(app, user):
    """The pause of an email address reads the same whether or not it has an account, new
    link included (tests/security/test_enumeration.py compares the whole pages)."""
    pages = {}
    for email in (CLIENT, "nobody@example.com"):
        b = Browser(app)
        for attempt in range(limits.FAILURES_BEFORE_LOCK):
            answer = b.log_in(email, f"not my password {attempt}")
        assert answer.status_code == 429
        pages[email] = _words(answer.get_data(as_text=True)).replace(email, "EMAIL")
        assert "signing in with this email address is paused until" in pages[email]
        assert SET_A_NEW_PASSWORD in answer.get_data(as_text=True)
    assert re.sub(r"\d\d:\d\d", "HH:MM", pages[CLIENT]) == \
        re.sub(r"\d\d:\d\d", "HH:MM", pages["nobody@example.com"])


def test_the_pause_says_how_to_reach_the_firm(app, user):
    app.config["PORTAL_CONTACT"] = "call 020 7946 0000"
    b = Browser(app)
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        b.log_in(CLIENT, f"not my password {attempt}")
    page = b.log_in(CLIENT).get_data(as_text=True)
    assert 'If you need help, please contact us: call <a href="tel:02079460000">' \
        in " ".join(page.split())
