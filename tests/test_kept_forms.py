"""A form sent too late loses nothing typed (blueprints/kept_forms.py).

Before: a client who left the security page open past the idle timeout, typed a new mobile
number and pressed Save was told only "Please sign in to see that page"; after signing in, the
page showed the old settings and nothing said the change had not been made. A form whose token
went stale came back empty. Now each says nothing was saved, and its boxes come back filled
in (never a password), after a sign-in when one is needed, for the same account only.
"""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from services import clock
from tests.conftest import TEST_PASSWORD, Browser, add_user, user_by_email

# What Chromium sends with a form posted from one of the site's own pages.
FROM_THIS_SITE = {"Origin": "http://localhost", "Sec-Fetch-Site": "same-origin"}
ANOTHER_SITE = {"Origin": "https://attacker.example", "Sec-Fetch-Site": "cross-site"}
NEW_NUMBER = "07400 654321"


def _box(page: str, name: str) -> str:
    """The value a text box of the page holds."""
    tag = re.search(rf'<input[^>]*\bname="{name}"[^>]*>', page)
    assert tag, f"no box {name}"
    value = re.search(r'\bvalue="([^"]*)"', tag.group(0))
    return value.group(1) if value else ""


def _checked(page: str, name: str) -> str:
    tag = re.search(rf'<input[^>]*\bchecked[^>]*\bname="{name}"[^>]*>'
                    rf'|<input[^>]*\bname="{name}"[^>]*\bchecked[^>]*>', page)
    assert tag, f"no choice checked for {name}"
    return re.search(r'\bvalue="([^"]*)"', tag.group(0)).group(1)


def _next_of(location: str) -> str:
    """Where the login page a redirect leads to goes on to."""
    parts = urlsplit(location)
    assert parts.path == "/login", location
    return parse_qs(parts.query)["next"][0]


def _idle_out(app) -> None:
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"] + 1))


def _sign_in_going_to(b: Browser, login_url: str, smtp, deliver, email: str):
    """Sign in from the login page a redirect led to (its ?next= kept), as a client would."""
    count = len(smtp.messages)
    response = b.post(login_url, {"email": email, "password": TEST_PASSWORD})
    assert response.status_code == 302, response.get_data(as_text=True)
    deliver()
    smtp.wait_for(count + 1)
    response = b.enter_code(smtp.last_to(email).code)
    assert response.status_code == 302
    return response.location


def test_a_login_form_left_open_keeps_the_email_but_never_the_password(app, user, browser):
    response = browser.client.post("/login", headers=FROM_THIS_SITE, data={
        "csrf_token": "stale", "email": "client@example.com", "password": TEST_PASSWORD})
    assert response.status_code == 302
    page = browser.text(response.location)
    assert "nothing was sent" in page and "filled in again" in page
    assert _box(page, "email") == "client@example.com"
    assert _box(page, "password") == "" and TEST_PASSWORD not in page
    # Given back once: a reload shows the empty form.
    assert _box(browser.text("/login"), "email") == ""


def test_another_sites_form_fills_in_nothing(app, user, browser):
    response = browser.client.post("/password/forgot", headers=ANOTHER_SITE, data={
        "csrf_token": "stale", "email": "planted@attacker.example"})
    assert response.status_code == 302
    page = browser.text(response.location)
    assert "Please try again" in page and "planted@attacker.example" not in page


def test_a_security_page_left_open_past_the_session_keeps_the_new_number(
        app, user, sign_in, smtp, deliver, vonage):
    b = sign_in()
    token = b.csrf_for("/account/security")
    _idle_out(app)
    response = b.client.post("/account/security", headers={
        **FROM_THIS_SITE, "Referer": "http://localhost/account/security"},
        data={"csrf_token": token, "channel": "sms", "phone": NEW_NUMBER})
    assert response.status_code == 302
    assert _next_of(response.location) == "/account/security"
    login_page = b.text(response.location)
    assert "Your session had ended, so nothing you sent was saved" in login_page
    assert "filled in again" in login_page

    back_to = _sign_in_going_to(b, response.location, smtp, deliver, "client@example.com")
    assert back_to == "/account/security"
    page = b.text(back_to)
    assert "Nothing was saved when your session ended" in page
    assert _box(page, "phone") == NEW_NUMBER and _checked(page, "channel") == "sms"
    assert user_by_email(app, "client@example.com").phone is None  # nothing was changed
    assert vonage.received == []
    # Once: the page shows the account's own settings again on the next visit.
    assert _box(b.text("/account/security"), "phone") == ""


def test_what_one_account_typed_is_never_shown_to_another(
        app, user, sign_in, smtp, deliver, vonage):
    add_user(app, "other@example.com")
    b = sign_in()
    token = b.csrf_for("/account/security")
    _idle_out(app)
    response = b.client.post("/account/security", headers=FROM_THIS_SITE,
                             data={"csrf_token": token, "channel": "sms", "phone": NEW_NUMBER})
    # Someone else signs in on the same browser (a shared computer), going to the same page.
    back_to = _sign_in_going_to(b, response.location, smtp, deliver, "other@example.com")
    page = b.text(back_to)
    assert NEW_NUMBER not in page and "filled in again" not in page


def test_a_stale_token_with_a_live_session_comes_back_filled_in(app, user, sign_in, vonage):
    """Signed in again in another tab: the session is new, this tab's token is not."""
    b = sign_in()
    response = b.client.post("/account/security", headers=FROM_THIS_SITE,
                             data={"csrf_token": "stale", "channel": "sms", "phone": NEW_NUMBER})
    assert response.status_code == 302 and response.location.endswith("/account/security")
    page = b.text(response.location)
    assert "nothing was sent" in page and "filled in again" in page
    assert _box(page, "phone") == NEW_NUMBER


def test_a_staff_invitation_typed_across_the_end_of_the_session_is_filled_in(
        app, sign_in, smtp, deliver):
    staff_email = "help@example.com"
    add_user(app, staff_email, role="support")
    b = sign_in(staff_email)
    token = b.csrf_for("/support/clients/new")
    _idle_out(app)
    typed = {"email": "new.client@example.com", "name": "Anna Smith", "phone": NEW_NUMBER,
             "channel": "sms", "role": "client"}
    response = b.client.post("/support/clients/new", headers=FROM_THIS_SITE,
                             data={"csrf_token": token, **typed})
    assert response.status_code == 302
    assert "what you typed will be filled in again" in b.text(response.location)
    back_to = _sign_in_going_to(b, response.location, smtp, deliver, staff_email)
    page = b.text(back_to)
    assert "Nothing was saved when your session ended" in page
    for name in ("email", "name", "phone"):
        assert _box(page, name) == typed[name]
    assert _checked(page, "channel") == "sms"
    assert user_by_email(app, "new.client@example.com") is None  # nobody was invited


def test_the_owners_address_typed_to_give_an_account_back_is_kept_too(
        app, sign_in, smtp, deliver):
    staff_email = "help@example.com"
    add_user(app, staff_email, role="support")
    client_id = add_user(app, "client@example.com")
    b = sign_in(staff_email)
    page = f"/support/clients/{client_id}/actions/give-back"
    token = b.csrf_for(page)
    _idle_out(app)
    response = b.client.post(page, data={"csrf_token": token, "owner_email": "own@example.org"},
                             headers={**FROM_THIS_SITE, "Referer": f"http://localhost{page}"})
    assert _next_of(response.location) == page
    back_to = _sign_in_going_to(b, response.location, smtp, deliver, staff_email)
    shown = b.text(back_to)
    assert "Nothing was saved when your session ended" in shown
    assert _box(shown, "owner_email") == "own@example.org"
    assert user_by_email(app, "own@example.org") is None  # nothing was given back


def test_a_post_only_action_after_the_session_ended_leads_back_to_its_page(app, user, sign_in):
    b = sign_in()
    token = b.csrf_for("/account/devices")
    _idle_out(app)
    response = b.client.post("/account/devices/sign-out-others", data={"csrf_token": token},
                             headers={**FROM_THIS_SITE,
                                      "Referer": "http://localhost/account/devices"})
    assert _next_of(response.location) == "/account/devices"
    assert "nothing you sent was saved. Sign in again, then try again." in b.text(
        response.location)
    # With no Referer, a POST-only address is no page to go back to: the portal.
    response = b.client.post("/account/devices/sign-out-others", data={"csrf_token": token},
                             headers=FROM_THIS_SITE)
    assert _next_of(response.location) == "/portal"


def test_the_passkey_script_is_told_to_sign_in_again(app, user, sign_in):
    b = sign_in()
    token = b.csrf_for("/account/security")
    _idle_out(app)
    response = b.client.post("/account/passkeys/options",
                             data={"csrf_token": token, "name": "Phone"},
                             headers={**FROM_THIS_SITE, "Accept": "application/json",
                                      "Referer": "http://localhost/account/security"})
    assert response.status_code == 401
    assert _next_of(response.json["redirect"]) == "/account/security"
    assert "Your session had ended" in b.text(response.json["redirect"])


def test_a_page_asked_for_after_the_session_ended_says_so(app, user, sign_in):
    b = sign_in()
    _idle_out(app)
    response = b.get("/account/security")
    assert response.status_code == 302
    assert "Your session had ended. Please sign in again." in b.text(response.location)
    # A browser that never signed in is only asked to.
    fresh = Browser(app)
    response = fresh.get("/account/security")
    assert "Please sign in to see that page." in fresh.text(response.location)


def test_only_a_sign_in_going_back_to_that_page_of_this_site_carries_it(app):
    from flask import session

    from blueprints import kept_forms

    with app.test_request_context("/login/code", method="POST"):
        session["kept_form"] = {"path": "/account/security", "user": 1,
                                "fields": {"phone": NEW_NUMBER}}
        assert kept_forms.carry_over(1, "/account/security")["after_sign_in"] is True
        assert kept_forms.carry_over(1, "/account/security?confirm=totp-start") is not None
        # Another account, another page, nowhere, or an app's page with the same path.
        assert kept_forms.carry_over(2, "/account/security") is None
        assert kept_forms.carry_over(1, "/portal") is None
        assert kept_forms.carry_over(1, None) is None
        assert kept_forms.carry_over(1, "https://files.example.com/account/security") is None
