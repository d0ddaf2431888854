"""What an app holds is worth only as much as the sign-in it came from, and an app's logout
link signs out only the person it names (OpenID Connect RP-Initiated Logout 1.0, 2 and 3).

Through the front door: a browser signs in, an app gets a code and a token, and then the
session ends the ways a client or the firm ends it.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import urlencode

from services import clock
from tests.conftest import TEST_PASSWORD, Browser, add_user
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, exchange, pkce, register

BYE = "https://files.example.com/bye"
NEW_PASSWORD = "a quiet walk to the harbour"


def _code(b: Browser, rp) -> tuple[str, str]:
    verifier, challenge = pkce()
    return code_from(b.get(authorize_url(rp, challenge)))["code"], verifier


def _tokens(b: Browser, rp) -> dict:
    code, verifier = _code(b, rp)
    response = exchange(b.client, rp, code, verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_json()


def _bearer(body: dict) -> dict:
    return {"Authorization": f"Bearer {body['access_token']}"}


def _userinfo(b: Browser, body: dict) -> int:
    return b.client.get("/oauth/userinfo", headers=_bearer(body)).status_code


def _invalid_grant(response) -> bool:
    return response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_logout_ends_the_apps_token_and_the_codes_it_holds(app, sign_in, rp):
    b = sign_in()
    body = _tokens(b, rp)
    held, verifier = _code(b, rp)  # a code the app has not exchanged yet
    assert _userinfo(b, body) == 200
    assert b.post("/logout", form_page="/portal").status_code == 302
    refused = b.client.get("/oauth/userinfo", headers=_bearer(body))
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
    assert _invalid_grant(exchange(b.client, rp, held, verifier))


def test_a_password_change_elsewhere_ends_this_browsers_tokens(app, sign_in, rp):
    there, here = Browser(app), Browser(app)
    sign_in(b=there)
    body = _tokens(there, rp)
    held, verifier = _code(there, rp)
    sign_in(b=here)
    mine = _tokens(here, rp)
    answer = here.post("/account/password", {"current_password": TEST_PASSWORD,
                                             "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code == 302
    assert _userinfo(there, body) == 401
    assert _invalid_grant(exchange(there.client, rp, held, verifier))
    assert _userinfo(here, mine) == 200  # the session that changed it lives on, and its token


def test_a_token_dies_when_its_session_goes_idle(app, sign_in, rp):
    b = sign_in()
    body = _tokens(b, rp)
    clock.advance(timedelta(minutes=app.config["SESSION_IDLE_MINUTES"], seconds=1))
    assert _userinfo(b, body) == 401  # the token's own hour is not up; the session's is


def _logout(b: Browser, **values):
    return b.get("/oauth/logout?" + urlencode(values))


def test_an_id_token_of_someone_else_does_not_sign_this_browser_out(app, sign_in, user):
    rp = register(app, "Files", (REDIRECT,), post_logout=(BYE,))
    add_user(app, "b@example.com")
    mallory = sign_in(b=Browser(app))  # A, who sends the link
    hint = _tokens(mallory, rp)["id_token"]
    victim = sign_in("b@example.com", b=Browser(app))
    response = _logout(victim, id_token_hint=hint, post_logout_redirect_uri=BYE,
                       state="chosen-by-a")
    assert response.status_code == 200 and "Location" not in response.headers
    assert "Log out of" in response.get_data(as_text=True)  # asked, as with no hint at all
    assert victim.get("/portal").status_code == 200
    # A POSTed request is no different, and an expired hint changes nothing.
    clock.advance(timedelta(hours=2))
    victim = sign_in("b@example.com", b=Browser(app))
    response = victim.client.post("/oauth/logout", data={"id_token_hint": hint,
                                                         "post_logout_redirect_uri": BYE})
    assert response.status_code == 200 and "Location" not in response.headers
    assert victim.get("/portal").status_code == 200


def test_the_signed_in_users_own_hint_signs_out_at_once_even_expired(app, sign_in, user):
    rp = register(app, "Files", (REDIRECT,), post_logout=(BYE,))
    b = sign_in()
    body = _tokens(b, rp)
    clock.advance(timedelta(minutes=20))
    b.get("/portal")  # still in use: the session is live, the id_token's hour is not up
    clock.advance(timedelta(minutes=20))
    b.get("/portal")
    clock.advance(timedelta(minutes=21))  # the id_token has expired; the session has not
    response = _logout(b, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE,
                       state="s1")
    assert response.status_code == 302 and response.headers["Location"] == BYE + "?state=s1"
    assert b.get("/portal").status_code == 302
    assert _userinfo(b, body) == 401


def test_only_registered_post_logout_addresses_are_followed(app, sign_in, user):
    rp = register(app, "Files", (REDIRECT,), post_logout=(BYE,))
    b = sign_in()
    body = _tokens(b, rp)
    # The code's redirect_uri was registered to receive codes, not people after a logout.
    response = _logout(b, id_token_hint=body["id_token"], post_logout_redirect_uri=REDIRECT)
    assert response.status_code == 200 and "Location" not in response.headers
    assert b.get("/portal").status_code == 302  # signed out, but sent nowhere


def test_with_nobody_signed_in_the_apps_own_hint_may_go_back_to_it(app, sign_in, user):
    rp = register(app, "Files", (REDIRECT,), post_logout=(BYE,))
    b = sign_in()
    body = _tokens(b, rp)
    assert b.post("/logout", form_page="/portal").status_code == 302
    response = _logout(b, id_token_hint=body["id_token"], post_logout_redirect_uri=BYE)
    assert response.status_code == 302 and response.headers["Location"] == BYE


# --- an app asking for a fresh sign-in (prompt=login, max_age) ----------------------------

def _marker_in(location: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    next_url = parse_qs(urlsplit(location).query)["next"][0]
    return parse_qs(urlsplit(next_url).query)["cg_reauth"][0]


def test_a_link_asking_for_a_fresh_sign_in_signs_nobody_out(app, user, sign_in, smtp, deliver):
    rp = register(app)
    b = sign_in()
    copy = Browser(app)
    copy.client.set_cookie("clientgate_session",
                           b.client.get_cookie("clientgate_session").value)
    asked = b.get(authorize_url(rp, pkce()[1], prompt="login"))
    assert asked.headers["Location"].startswith("/login?next=")
    page = b.get(asked.headers["Location"])
    assert page.status_code == 200  # the form, not straight back to the app
    assert "Files asks you to sign in again" in page.get_data(as_text=True)
    assert b.get("/portal").status_code == 200  # still signed in: a link ends nothing

    count = len(smtp.messages)
    b.post(asked.headers["Location"], {"email": "client@example.com",
                                        "password": TEST_PASSWORD},
           form_page=asked.headers["Location"])
    deliver()
    smtp.wait_for(count + 1)
    back = b.enter_code(smtp.last_to("client@example.com").code).headers["Location"]
    assert code_from(b.get(back))["code"]
    assert copy.get("/portal").status_code == 302  # the session the new one replaced ended


def test_a_marker_from_another_round_proves_no_fresh_sign_in(app, user, sign_in):
    rp = register(app)
    stranger = Browser(app)
    marker = _marker_in(stranger.get(authorize_url(rp, pkce()[1])).headers["Location"])
    b = sign_in()
    clock.advance(timedelta(minutes=5))
    for _ in range(2):
        again = b.get(authorize_url(rp, pkce()[1], prompt="login", max_age="60",
                                    cg_reauth=marker))
        assert again.status_code == 302
        assert again.headers["Location"].startswith("/login?next="), again.headers["Location"]
