"""Bad input to the OpenID Connect endpoints gets a clear 4xx, never a 500 (SPEC: Bad input).

Some of these failed only on PostgreSQL (a NUL in a query, a value longer than its column):
run this file there too (scripts/pgtemp.py).
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from extensions import db
from tests.conftest import Browser
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, pkce


@pytest.mark.parametrize("redirect_uri", [
    "https://evil.example/é", 'https://evil.example/"', "https://evil.example/\\",
    REDIRECT + "\x00", "\x00",
])
def test_an_unregistered_strange_redirect_uri_gets_our_page(app, sign_in, rp, redirect_uri):
    b = sign_in()
    response = b.get(authorize_url(rp, pkce()[1], redirect_uri=redirect_uri))
    assert response.status_code == 400 and "Location" not in response.headers
    assert "has not registered" in response.get_data(as_text=True)


@pytest.mark.parametrize("response_type", ["é", "token", "code\x00", '"'])
def test_a_strange_response_type_goes_back_to_the_app_as_an_error(app, sign_in, rp,
                                                                  response_type):
    b = sign_in()
    back = code_from(b.get(authorize_url(rp, pkce()[1], response_type=response_type)))
    assert back["_to"] == REDIRECT and back["error"] and "code" not in back


@pytest.mark.parametrize("client_id", ["\x00", "cg-" + "A" * 23 + "\x00", "é", "x" * 5000, " "])
def test_a_client_id_of_no_shape_we_give_is_no_client(app, sign_in, rp, client_id):
    b = sign_in()
    query = {"response_type": "code", "client_id": client_id, "redirect_uri": REDIRECT,
             "scope": "openid"}
    response = b.get("/oauth/authorize?" + urlencode(query))
    assert response.status_code == 400 and "not registered" in response.get_data(as_text=True)
    token = b.client.post("/oauth/token", data={"grant_type": "authorization_code",
                                                "code": "x", "redirect_uri": REDIRECT,
                                                "client_id": client_id})
    # 400, not 401: no Authorization header was sent (RFC 6749 5.2).
    assert token.status_code == 400 and token.get_json()["error"] == "invalid_client"
    logout = b.get("/oauth/logout?" + urlencode({"client_id": client_id}))
    assert logout.status_code == 200 and "Log out of" in logout.get_data(as_text=True)
    assert b.get("/portal").status_code == 200


@pytest.mark.parametrize("credentials", [b"\xff\xfe:x", b"\xff", b":", b"\x00:\x00"])
def test_basic_credentials_that_are_not_text_are_invalid_client(app, rp, credentials):
    client = app.test_client()
    basic = base64.b64encode(credentials).decode()
    response = client.post("/oauth/token", data={"grant_type": "authorization_code",
                                                 "code": "x", "redirect_uri": REDIRECT},
                           headers={"Authorization": f"Basic {basic}"})
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("extra", [
    {"nonce": "n\x00"}, {"nonce": "n" * 256}, {"nonce": "line\nbreak"},
    {"scope": "openid " * 40}, {"scope": "openid\x00email"},
])
def test_a_nonce_or_scope_that_cannot_be_kept_is_invalid_request(app, sign_in, rp, extra):
    b = sign_in()
    back = code_from(b.get(authorize_url(rp, pkce()[1], **extra)))
    assert back["_to"] == REDIRECT and back["error"] == "invalid_request", back
    assert "code" not in back and back["state"].startswith("st-")


def test_the_longest_nonce_and_scope_that_fit_still_work(app, sign_in, rp):
    b = sign_in()
    scope = ("openid email profile " * 12).strip()[:255].strip()
    back = code_from(b.get(authorize_url(rp, pkce()[1], nonce="é" * 255, scope=scope)))
    assert back["code"], back


def test_the_same_bad_values_before_sign_in_never_break_the_trip_to_sign_in(app, rp):
    b = Browser(app)
    for extra in ({"nonce": "n\x00"}, {"scope": "openid " * 40}, {"client_id": "\x00"}):
        response = b.get(authorize_url(rp, pkce()[1], **extra))
        assert response.status_code in (302, 400), extra
        if response.status_code == 302:
            assert "error=invalid_request" in response.headers["Location"] or \
                urlsplit(response.headers["Location"]).path == "/login"


@pytest.mark.parametrize("next_url", ["http://[", "//[x", "http://%5B", "/oauth/authorize?"
                                      "client_id=%00&redirect_uri=http://[", "https://[::1"])
def test_a_next_that_is_no_address_still_shows_the_sign_in(app, next_url):
    response = Browser(app).get("/login?" + urlencode({"next": next_url}))
    assert response.status_code == 200
    raw = Browser(app).get("/login?next=" + next_url)
    # A NUL (%00) anywhere in a query is refused before any page (app.py no_nul_characters).
    assert raw.status_code == (400 if "%00" in next_url else 200)


def test_a_sign_in_started_by_an_app_still_names_it_in_the_form_policy(app, rp):
    b = Browser(app)
    login = b.get(authorize_url(rp, pkce()[1])).headers["Location"]
    assert parse_qs(urlsplit(login).query)["next"][0].startswith("/oauth/authorize?")
    assert "form-action 'self' https://files.example.com" in \
        b.get(login).headers["Content-Security-Policy"]


def test_an_address_registered_with_a_port_out_of_range_gets_our_page(app, sign_in, user):
    """Registered before add-client read the port: every sign-in through the app was a 500."""
    from models import OAuthClient
    from services import clock
    from tests.oidc.conftest import App

    broken = "https://files.example.com:99999/cb"
    with app.app_context():
        db.session.add(OAuthClient(client_id="cg-" + "P" * 24, name="Old app",
                                   redirect_uris=[broken], created_at=clock.now()))
        db.session.commit()
    b = sign_in()
    response = b.get(authorize_url(App("cg-" + "P" * 24, None, broken), pkce()[1]))
    assert response.status_code == 400 and "Location" not in response.headers
    assert "has not registered" in response.get_data(as_text=True)


@pytest.mark.parametrize("extra, error", [
    ({"request": "eyJhbGciOiJub25lIn0.e30."}, "request_not_supported"),
    ({"request_uri": "https://evil.example.net/request.jwt"}, "request_uri_not_supported"),
    ({"response_mode": "fragment"}, "invalid_request"),
    ({"response_mode": "form_post"}, "invalid_request"),
    ({"response_mode": "é\""}, "invalid_request"),
])
def test_what_we_do_not_offer_is_refused_not_silently_ignored(app, sign_in, rp, extra, error):
    """A request object, a request_uri and a response_mode other than query were ignored,
    so the app never learnt that what it signed or asked for had no effect."""
    signed_in = sign_in()
    for b in (Browser(app), signed_in):  # before and after signing in alike
        back = code_from(b.get(authorize_url(rp, pkce()[1], **extra)))
        assert back["_to"] == REDIRECT and back["error"] == error, back
        assert "code" not in back and back["state"].startswith("st-")
    # Only to an address the app registered: otherwise our own page, as for any error.
    elsewhere = authorize_url(rp, pkce()[1], redirect_uri="https://evil.example.net/cb", **extra)
    response = signed_in.get(elsewhere)
    assert response.status_code == 400 and "Location" not in response.headers


def test_response_mode_query_said_outright_is_fine(sign_in, rp):
    assert code_from(sign_in().get(authorize_url(rp, pkce()[1], response_mode="query")))["code"]
