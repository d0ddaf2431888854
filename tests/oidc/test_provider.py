"""The OpenID Connect provider through the front door: the flow, and each bad case refused
with the error the specs name (RFC 6749 5.2, RFC 7636 4.6, RFC 9700, OIDC Core 3.1.2.6).

The id_token is checked here with joserfc (Authlib's JOSE library) against the published
JWKS; tests/oidc/test_relying_parties.py does the same through two client libraries.
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from sqlalchemy import select

from blueprints.safety import NEXT_LONGEST
from extensions import db, limiter
from models import Event, OAuthClient, OAuthCode, OAuthToken, OIDCSigningKey
from services import clock
from tests.conftest import Browser, user_by_email
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, exchange, pkce, register

ISSUER = "http://localhost"


def keyset(b: Browser) -> KeySet:
    return KeySet.import_key_set(b.client.get("/oauth/jwks").get_json())


def decode(b: Browser, id_token: str, rp):
    token = jwt.decode(id_token, keyset(b), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(iss={"essential": True, "value": ISSUER},
                          aud={"essential": True, "value": rp.client_id}).validate(token.claims)
    return token


def events(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def signed_in_code(sign_in, rp, **extra):
    """A signed-in browser, a PKCE verifier and the redirect back to the app with a code."""
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge, **extra)))
    return b, verifier, back


def test_discovery_names_the_issuer_and_only_the_safe_choices(browser):
    doc = browser.client.get("/.well-known/openid-configuration").get_json()
    assert doc["issuer"] == ISSUER
    assert doc["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert doc["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert doc["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert doc["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert doc["end_session_endpoint"] == f"{ISSUER}/oauth/logout"
    assert doc["response_types_supported"] == ["code"]
    assert doc["grant_types_supported"] == ["authorization_code"]
    assert doc["code_challenge_methods_supported"] == ["S256"]
    assert doc["id_token_signing_alg_values_supported"] == ["RS256"]
    # The Host header never changes the issuer (SPEC: from PORTAL_URL only).
    other = browser.client.get("/.well-known/openid-configuration",
                               headers={"Host": "phish.example"}).get_json()
    assert other is None or other["issuer"] == ISSUER


def test_code_flow_with_pkce_id_token_and_userinfo(app, sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp, nonce="n-42")
    assert back["_to"] == REDIRECT and back["state"].startswith("st-") and back["code"]
    assert back["iss"] == ISSUER  # RFC 9207: the app can tell which server answered
    response = exchange(b.client, rp, back["code"], verifier)
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["token_type"].lower() == "bearer" and "refresh_token" not in body
    token = decode(b, body["id_token"], rp)
    claims = token.claims
    user = user_by_email(app, "client@example.com")
    assert token.header["alg"] == "RS256" and token.header["kid"] in {
        k["kid"] for k in b.client.get("/oauth/jwks").get_json()["keys"]}
    assert claims["sub"] == str(user.id) and claims["sub"] != user.email
    assert claims["nonce"] == "n-42"
    assert claims["amr"] == ["pwd", "otp", "mfa"]
    assert claims["email"] == "client@example.com" and claims["email_verified"] is True
    assert claims["name"]
    assert claims["iat"] <= time.time() < claims["exp"] and claims["auth_time"] <= claims["iat"]
    assert claims["at_hash"]

    info = b.client.get("/oauth/userinfo",
                        headers={"Authorization": f"Bearer {body['access_token']}"})
    assert info.status_code == 200
    assert info.get_json()["sub"] == claims["sub"]
    assert info.get_json()["email"] == "client@example.com"
    # Only hashes of the code, the access token and the secret are kept.
    with app.app_context():
        stored = json.dumps([[r.code_hash for r in db.session.scalars(select(OAuthCode))],
                             [r.token_hash for r in db.session.scalars(select(OAuthToken))],
                             [r.secret_hash for r in db.session.scalars(select(OAuthClient))]])
    assert back["code"] not in stored and body["access_token"] not in stored
    assert rp.secret not in stored
    # Support sees which app the sign-in went to.
    issued = events(app, "oidc_code_issued")
    assert issued and issued[-1].detail["client"] == "Files"


def test_not_signed_in_goes_through_clientgate_sign_in_and_back(app, smtp, deliver, rp):
    b = Browser(app)
    verifier, challenge = pkce()
    url = authorize_url(rp, challenge)
    first = b.get(url)
    assert first.status_code == 302
    login = first.headers["Location"]
    assert urlsplit(login).path == "/login"
    back_to = parse_qs(urlsplit(login).query)["next"][0]
    assert back_to.startswith(url + "&cg_reauth=")  # the request, marked "sent to sign in"
    assert _sign_in_again(b, login, smtp, deliver) == back_to  # the tab guard etc. unchanged
    back = code_from(b.get(back_to))
    assert back["_to"] == REDIRECT
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200
    assert events(app, "oidc_login_asked")[0].detail["client"] == "Files"


def test_wrong_redirect_uri_stops_at_clientgate_without_redirect(app, sign_in, rp):
    b = sign_in()
    _, challenge = pkce()
    response = b.get(authorize_url(rp, challenge,
                                   redirect_uri="https://evil.example.net/oidc/callback"))
    assert response.status_code == 400 and "Location" not in response.headers
    assert "has not registered" in response.get_data(as_text=True)
    # A prefix of a registered address is not a match either (exact match only).
    response = b.get(authorize_url(rp, challenge, redirect_uri=REDIRECT + "/more"))
    assert response.status_code == 400 and "Location" not in response.headers
    bad = events(app, "oidc_bad_request")
    assert bad[0].outcome == "redirect_mismatch"
    assert bad[0].detail["registered"] == [REDIRECT]


def test_unknown_client_gets_a_page_not_a_redirect(sign_in, rp):
    b = sign_in()
    rp.client_id = "no-such-app"
    response = b.get(authorize_url(rp, pkce()[1]))
    assert response.status_code == 400 and "not registered" in response.get_data(as_text=True)


def test_missing_or_wrong_pkce_verifier_is_invalid_grant(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    response = exchange(b.client, rp, back["code"], None)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    response = exchange(b.client, rp, back["code"], pkce()[0])
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_plain_pkce_refused_and_public_clients_must_use_pkce(sign_in, rp, public_rp):
    b = sign_in()
    back = code_from(b.get(authorize_url(rp, "x" * 43, code_challenge_method="plain")))
    assert back["error"] == "invalid_request" and "code" not in back
    back = code_from(b.get(authorize_url(public_rp)))
    assert back["error"] == "invalid_request" and "code" not in back
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(public_rp, challenge)))
    response = exchange(b.client, public_rp, back["code"], verifier, secret=None)
    assert response.status_code == 200 and response.get_json()["id_token"]


def test_confidential_client_without_pkce_still_works(sign_in, rp):
    b = sign_in()
    back = code_from(b.get(authorize_url(rp)))
    assert exchange(b.client, rp, back["code"]).status_code == 200


def test_replayed_code_is_refused_and_revokes_its_tokens(app, sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    first = exchange(b.client, rp, back["code"], verifier).get_json()
    bearer = {"Authorization": f"Bearer {first['access_token']}"}
    assert b.client.get("/oauth/userinfo", headers=bearer).status_code == 200
    again = exchange(b.client, rp, back["code"], verifier)
    assert again.status_code == 400 and again.get_json()["error"] == "invalid_grant"
    refused = b.client.get("/oauth/userinfo", headers=bearer)
    assert refused.status_code == 401 and "invalid_token" in refused.headers["WWW-Authenticate"]
    assert events(app, "oidc_code_replayed")[0].detail["tokens_revoked"] == 1


def test_expired_code_is_invalid_grant(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    clock.advance(timedelta(seconds=61))
    response = exchange(b.client, rp, back["code"], verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_wrong_client_secret_is_invalid_client(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    response = exchange(b.client, rp, back["code"], verifier, secret="not-the-secret")
    assert response.status_code == 401 and response.get_json()["error"] == "invalid_client"
    # The code of another app is no good either, even with that app's right secret.
    other = register(b.app, "Other", ("https://other.example.com/cb",))
    other.redirect_uri = REDIRECT
    response = exchange(b.client, other, back["code"], verifier)
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_refused_token_requests_are_limited_and_good_ones_are_not(app, sign_in, rp):
    """Only refused requests count (an app's server asks for a token on every sign-in), and
    the app is told in JSON how long to wait."""
    app.config.update(RATELIMIT_ENABLED=True,
                      RATE_LIMITS={"oauth_failures_per_ip": "3 per hour",
                                   "login_per_account": "100 per minute"})
    limiter.init_app(app)  # fresh memory storage (tests/conftest.py turns limits off)
    for _ in range(5):  # more good exchanges than the limit: none of them counts
        b, verifier, back = signed_in_code(lambda: sign_in(b=Browser(app)), rp)
        assert exchange(b.client, rp, back["code"], verifier).status_code == 200
    client = app.test_client()
    for n in range(3):
        refused = exchange(client, rp, f"guess-{n}", secret="not-the-secret")
        assert refused.status_code == 401
    assert client.get("/oauth/userinfo",
                      headers={"Authorization": "Bearer guess"}).status_code == 429
    b, verifier, back = signed_in_code(lambda: sign_in(b=Browser(app)), rp)
    limited = exchange(b.client, rp, back["code"], verifier)  # from the same address
    assert limited.status_code == 429 and limited.get_json()["error"] == "invalid_request"
    assert 3000 < int(limited.headers["Retry-After"]) <= 3600
    assert "no-store" in limited.headers["Cache-Control"]


def test_authorization_requests_are_limited_per_address(app, rp):
    """/oauth/authorize had no limit: anyone could ask it without end."""
    app.config.update(RATELIMIT_ENABLED=True,
                      RATE_LIMITS={"oauth_authorize_per_ip": "4 per hour"})
    limiter.init_app(app)  # fresh memory storage (tests/conftest.py turns limits off)
    client = app.test_client()
    assert all(client.get(authorize_url(rp, pkce()[1])).status_code == 302 for _ in range(3))
    assert client.post("/oauth/authorize", data=_authorize_form(rp, pkce()[1])).status_code \
        == 302  # every method counts
    limited = client.get(authorize_url(rp, pkce()[1]))
    assert limited.status_code == 429 and "Retry-After" in limited.headers
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    assert other.get(authorize_url(rp, pkce()[1])).status_code == 302


def test_the_default_authorization_limit_lets_a_busy_office_through(app, rp):
    # Each sign-in through an app asks twice (on the way to the sign-in and back): thirty
    # clients behind one address signing in within a minute are not stopped.
    app.config.update(RATELIMIT_ENABLED=True)
    limiter.init_app(app)
    client = app.test_client()
    assert all(client.get(authorize_url(rp, pkce()[1])).status_code == 302 for _ in range(60))


def test_requests_from_nobody_signed_in_are_noted_once_per_app_and_address(app, rp, caplog):
    """600 requests used to write 600 audit rows and log lines."""
    client = app.test_client()
    unknown = authorize_url(rp, pkce()[1], client_id="cg-" + "B" * 24)
    elsewhere = authorize_url(rp, pkce()[1], redirect_uri="https://evil.example.net/cb")
    with caplog.at_level("WARNING", logger="clientgate.oidc"):
        for _ in range(20):
            assert client.get(unknown).status_code == 400
            assert client.get(elsewhere).status_code == 400
            assert client.get(authorize_url(rp, pkce()[1])).status_code == 302
    assert len(events(app, "oidc_bad_request")) == 2  # the unknown app, and this one
    assert len(events(app, "oidc_login_asked")) == 1
    assert len([r for r in caplog.records if "refused an authorization" in r.message]) == 2
    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "198.51.100.7"
    other.get(unknown)
    assert len(events(app, "oidc_bad_request")) == 3  # another address is noted
    clock.advance(timedelta(minutes=11))
    client.get(unknown)
    client.get(authorize_url(rp, pkce()[1]))
    assert len(events(app, "oidc_bad_request")) == 4  # and this one again, later
    assert len(events(app, "oidc_login_asked")) == 2


def test_a_signed_in_clients_refused_requests_are_each_noted(sign_in, rp):
    # They name the client, so each is on their support timeline (the limit above bounds them).
    b = sign_in()
    for _ in range(3):
        b.get(authorize_url(rp, pkce()[1], redirect_uri="https://evil.example.net/cb"))
    assert len(events(b.app, "oidc_bad_request")) == 3


def _authorize_form(rp, challenge, **extra) -> dict:
    """The parameters of authorize_url, as an app's page would POST them."""
    return {k: v[0] for k, v in parse_qs(urlsplit(authorize_url(rp, challenge, **extra)).query)
            .items()}


def test_an_authorization_request_may_be_posted(sign_in, rp):
    """OIDC Core 3.1.2.1: GET and POST; a POST was a 405. It comes from the app's page on
    another site, so it carries no CSRF token, and passes the same checks as a GET."""
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.client.post("/oauth/authorize", data=_authorize_form(rp, challenge)))
    assert back["_to"] == REDIRECT and back["state"].startswith("st-"), back
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert decode(b, body["id_token"], rp).claims["sub"]
    refused = b.client.post("/oauth/authorize", data=_authorize_form(
        rp, challenge, redirect_uri="https://evil.example.net/cb"))
    assert refused.status_code == 400 and "Location" not in refused.headers
    back = code_from(b.client.post("/oauth/authorize",
                                   data=_authorize_form(rp, challenge, scope="openid " * 40)))
    assert back["_to"] == REDIRECT and back["error"] == "invalid_request" and "code" not in back


def test_a_posted_authorization_request_is_read_from_its_form_alone(sign_in, rp):
    # Never the query and the form mixed: the query of a POST is not the request.
    b = sign_in()
    form = _authorize_form(rp, pkce()[1])
    response = b.client.post("/oauth/authorize?" + _q(**form), data={})
    assert response.status_code == 400 and "Location" not in response.headers
    response = b.client.post("/oauth/authorize?" + _q(client_id="cg-" + "Q" * 24), data=form)
    assert code_from(response)["code"]


def test_a_posted_request_goes_to_the_sign_in_and_back_as_a_get(app, user, smtp, deliver, rp):
    b = Browser(app)
    verifier, challenge = pkce()
    form = _authorize_form(rp, challenge, state="st-posted")
    login = b.client.post("/oauth/authorize", data=form).headers["Location"]
    assert urlsplit(login).path == "/login"
    back_to = _sign_in_again(b, login, smtp, deliver)
    assert parse_qs(urlsplit(back_to).query)["client_id"] == [rp.client_id]
    back = code_from(b.get(back_to))
    assert back["state"] == "st-posted"
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200


@pytest.mark.parametrize("scope, granted", [
    ("openid offline_access", "openid"), ("openid groups email", "openid email"),
    ("profile openid x-unknown", "profile openid"),
])
def test_scopes_we_do_not_offer_are_left_out_not_refused(app, sign_in, rp, scope, granted):
    """OIDC Core 3.1.2.1: scope values not understood SHOULD be ignored (they were
    invalid_scope). The code keeps, and the token names, only the scopes granted."""
    b, verifier, back = signed_in_code(sign_in, rp, scope=scope)
    assert back["code"], back
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert body["scope"] == granted and decode(b, body["id_token"], rp).claims["sub"]
    with app.app_context():
        assert db.session.scalar(select(OAuthCode.scope)) == granted
        assert db.session.scalar(select(OAuthToken.scope)) == granted


def test_token_redirect_uri_must_match_the_authorization(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    response = exchange(b.client, rp, back["code"], verifier,
                        redirect_uri="https://files.example.com/elsewhere")
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_grant"


def test_tampered_id_token_fails_the_signature_check(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    id_token = exchange(b.client, rp, back["code"], verifier).get_json()["id_token"]
    header, payload, signature = id_token.split(".")
    claims = json.loads(_b64d(payload))
    claims["email"] = "boss@example.com"
    forged = ".".join([header, _b64e(json.dumps(claims).encode()), signature])
    with pytest.raises(BadSignatureError):
        jwt.decode(forged, keyset(b), algorithms=["RS256"])


def _b64d(part: str) -> bytes:
    import base64
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


def _b64e(data: bytes) -> str:
    import base64
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_prompt_none_without_a_session_answers_login_required(app, rp):
    b = Browser(app)
    back = code_from(b.get(authorize_url(rp, pkce()[1], prompt="none")))
    assert back["_to"] == REDIRECT and back["error"] == "login_required"
    assert back["iss"] == ISSUER
    assert back["state"].startswith("st-")


def _sign_in_again(b: Browser, login_url: str, smtp, deliver) -> str:
    count = len(smtp.messages)
    b.get(login_url)
    b.post(login_url, {"email": "client@example.com", "password": "correct horse battery"},
           form_page=login_url)
    deliver()
    smtp.wait_for(count + 1)
    response = b.enter_code(smtp.last_to("client@example.com").code)
    assert response.status_code == 302
    return response.headers["Location"]


def test_prompt_login_and_max_age_force_a_fresh_sign_in(app, sign_in, smtp, deliver, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    first = exchange(b.client, rp, back["code"], verifier).get_json()
    first_auth = jwt.decode(first["id_token"], keyset(b)).claims["auth_time"]
    for extra in ({"prompt": "login"}, {"max_age": "60"}):
        clock.advance(timedelta(seconds=120))
        verifier, challenge = pkce()
        response = b.get(authorize_url(rp, challenge, **extra))
        assert urlsplit(response.headers["Location"]).path == "/login", extra
        back_to = _sign_in_again(b, response.headers["Location"], smtp, deliver)
        back = code_from(b.get(back_to))
        assert back["_to"] == REDIRECT, back
        body = exchange(b.client, rp, back["code"], verifier).get_json()
        assert jwt.decode(body["id_token"], keyset(b)).claims["auth_time"] > first_auth
    # A sign-in young enough for max_age goes straight through.
    verifier, challenge = pkce()
    assert code_from(b.get(authorize_url(rp, challenge, max_age="3600")))["code"]


def test_access_rules_stop_an_app_the_client_may_not_open(app, smtp, deliver, tmp_path):
    from tests.conftest import add_user, make_config, running_app

    config = make_config(tmp_path, smtp, PROTECTED_HOSTS="files.example.com",
                         ACCESS_RULES="files.example.com admin Files")
    with running_app(config) as guarded:
        add_user(guarded, "client@example.com")
        rp = register(guarded)
        b = Browser(guarded)
        b.post("/login", {"email": "client@example.com", "password": "correct horse battery"})
        with guarded.app_context():
            from services import delivery
            delivery.run_once()
        smtp.wait_for(1)
        b.enter_code(smtp.last_to("client@example.com").code)
        response = b.get(authorize_url(rp, pkce()[1]))
        assert response.status_code == 403 and "Location" not in response.headers
        text = response.get_data(as_text=True)
        assert "Files is not open to your account" in text and "open only to admin" in text
        with guarded.app_context():
            denied = db.session.scalars(select(Event).where(Event.type == "oidc_denied")).all()
            assert denied[0].outcome == "not_allowed"


def test_rp_initiated_logout(app, user, sign_in):
    rp = register(app, "Files", (REDIRECT,), post_logout=("https://files.example.com/bye",))
    b, verifier, back = signed_in_code(sign_in, rp)
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    # An address the app never registered: signed out, but not sent there.
    response = b.get("/oauth/logout?" + _q(id_token_hint=body["id_token"],
                                           post_logout_redirect_uri="https://evil.example/"))
    assert response.status_code == 200 and "Location" not in response.headers
    assert b.client.get("/portal").status_code == 302  # the ClientGate session has ended
    assert b.client.get("/oauth/userinfo", headers=bearer).status_code == 401

    b = sign_in(b=Browser(app))
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    response = b.get("/oauth/logout?" + _q(id_token_hint=body["id_token"], state="s1",
                                           post_logout_redirect_uri="https://files.example.com/bye"))
    assert response.status_code == 302
    assert response.headers["Location"] == "https://files.example.com/bye?state=s1"
    assert b.client.get("/portal").status_code == 302

    # No id_token_hint: ask first (a link elsewhere must not sign people out).
    b = sign_in(b=Browser(app))
    response = b.get("/oauth/logout?" + _q(client_id=rp.client_id))
    assert response.status_code == 200 and "Log out of" in response.get_data(as_text=True)
    assert b.client.get("/portal").status_code == 200


def _q(**values) -> str:
    from urllib.parse import urlencode
    return urlencode(values)


def test_signing_key_is_stored_encrypted_and_rotates(app, runner_app=None):
    runner = app.test_cli_runner()
    b = Browser(app)
    first = b.client.get("/oauth/jwks").get_json()["keys"]
    assert len(first) == 1 and "d" not in first[0] and first[0]["kty"] == "RSA"
    with app.app_context():
        row = db.session.scalar(select(OIDCSigningKey))
        assert '"d"' not in row.private_key_encrypted and first[0]["n"] not in \
            row.private_key_encrypted
    result = runner.invoke(args=["oidc", "rotate-key"])
    assert result.exit_code == 0, result.output
    keys = b.client.get("/oauth/jwks").get_json()["keys"]
    assert len(keys) == 2 and keys[1]["kid"] == first[0]["kid"]  # new first, old beside it
    clock.advance(timedelta(hours=1, minutes=1))
    result = runner.invoke(args=["oidc", "rotate-key"])
    assert first[0]["kid"] in result.output  # dropped: its tokens have all expired
    keys = b.client.get("/oauth/jwks").get_json()["keys"]
    assert len(keys) == 2 and first[0]["kid"] not in {k["kid"] for k in keys}


def test_workers_asking_for_the_first_key_at_once_make_one(app):
    """Several workers' first requests at the same moment: one key, and all publish it (the
    same on PostgreSQL with two servers: tests/production/test_several_servers.py)."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    gate = threading.Barrier(4)

    def fetch(_):
        client = app.test_client()
        gate.wait(30)
        return client.get("/oauth/jwks").get_json()

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(fetch, range(4)))
    with app.app_context():
        assert len(db.session.scalars(select(OIDCSigningKey)).all()) == 1
    assert len(answers[0]["keys"]) == 1 and all(answer == answers[0] for answer in answers)


def test_new_tokens_are_signed_with_the_new_key(app, sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    old = jwt.decode(exchange(b.client, rp, back["code"], verifier).get_json()["id_token"],
                     keyset(b))
    assert app.test_cli_runner().invoke(args=["oidc", "rotate-key"]).exit_code == 0
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    new = jwt.decode(exchange(b.client, rp, back["code"], verifier).get_json()["id_token"],
                     keyset(b))
    assert new.header["kid"] != old.header["kid"]
    assert {old.header["kid"], new.header["kid"]} <= {
        k["kid"] for k in b.client.get("/oauth/jwks").get_json()["keys"]}


def test_a_rotation_while_a_token_is_made_still_gives_one_that_checks(sign_in, rp, monkeypatch):
    """The header's kid and the signature each looked the key up: `rotate-key` on another
    server, committed between the two (PostgreSQL), gave an id_token naming one key and
    signed with the other, which no app can check."""
    from services.federation import oidc

    b, verifier, back = signed_in_code(sign_in, rp)
    first = keyset(b)  # the first key, made
    look_up, rotated = oidc.ensure_signing_key, []

    def rotated_by_another_server_after_the_first_look():
        key = look_up()
        if not rotated:
            rotated.append(oidc.rotate_key()[0].kid)
            db.session.commit()
        return key

    monkeypatch.setattr(oidc, "ensure_signing_key", rotated_by_another_server_after_the_first_look)
    id_token = exchange(b.client, rp, back["code"], verifier).get_json()["id_token"]
    token = decode(b, id_token, rp)  # a BadSignatureError when the two disagreed
    assert rotated and token.header["kid"] in {key.kid for key in first}


def test_userinfo_takes_the_token_in_the_header_or_a_posted_form(sign_in, rp):
    b, verifier, back = signed_in_code(sign_in, rp)
    token = exchange(b.client, rp, back["code"], verifier).get_json()["access_token"]
    assert b.client.post("/oauth/userinfo", data={"access_token": token}).status_code == 200
    assert b.client.get("/oauth/userinfo").status_code == 401
    assert b.client.get("/oauth/userinfo", headers={"Authorization": "Bearer nope"}) \
        .status_code == 401
    assert b.client.get(f"/oauth/userinfo?access_token={token}").status_code == 401  # RFC 9700


def test_a_switched_off_account_gets_nothing_more(app, sign_in, rp):
    from models import User

    b, verifier, back = signed_in_code(sign_in, rp)
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert decode(b, body["id_token"], rp).claims["name"]
    verifier, challenge = pkce()
    pending = code_from(b.get(authorize_url(rp, challenge)))
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "client@example.com"))
        user.deactivated_at = clock.now()
        db.session.commit()
    bearer = {"Authorization": f"Bearer {body['access_token']}"}
    assert b.client.get("/oauth/userinfo", headers=bearer).status_code == 401
    refused = exchange(b.client, rp, pending["code"], verifier)
    assert refused.status_code == 400 and refused.get_json()["error"] == "invalid_grant"


def test_a_request_too_long_to_survive_the_sign_in_gets_a_page(app, rp):
    b = Browser(app)
    response = b.get(authorize_url(rp, pkce()[1], state="s" * NEXT_LONGEST))
    assert response.status_code == 400 and "too long" in response.get_data(as_text=True)
    ok = b.get(authorize_url(rp, pkce()[1], state="s" * 100))
    assert urlsplit(ok.headers["Location"]).path == "/login"


def test_prompt_login_when_not_signed_in_asks_for_one_sign_in_only(app, user, smtp, deliver, rp):
    b = Browser(app)
    verifier, challenge = pkce()
    first = b.get(authorize_url(rp, challenge, prompt="login"))
    assert urlsplit(first.headers["Location"]).path == "/login"
    back_to = _sign_in_again(b, first.headers["Location"], smtp, deliver)
    back = code_from(b.get(back_to))
    assert back["_to"] == REDIRECT and back["code"]
    # The way back works once: the same address again asks for a new sign-in.
    query = {k: v[0] for k, v in parse_qs(urlsplit(back_to).query).items()}
    again = b.get("/oauth/authorize?" + _q(**dict(query, nonce="another-nonce")))
    assert urlsplit(again.headers["Location"]).path == "/login"
    # And the marker cannot be forged.
    b2 = Browser(app)
    b2.get(_sign_in_again(b2, b2.get(authorize_url(rp, challenge)).headers["Location"],
                          smtp, deliver))
    forged = b2.get(authorize_url(rp, challenge, prompt="login", cg_reauth="1.2.3"))
    assert urlsplit(forged.headers["Location"]).path == "/login"


def test_sign_in_pages_of_an_app_may_send_their_form_on_to_that_app_only(app, rp):
    b = Browser(app)
    login = b.get(authorize_url(rp, pkce()[1])).headers["Location"]
    policy = b.get(login).headers["Content-Security-Policy"]
    assert "form-action 'self' https://files.example.com" in policy
    assert "files.example.com" not in b.get("/login").headers["Content-Security-Policy"]
    # An unregistered address in `next` adds nothing.
    forged = authorize_url(rp, pkce()[1], redirect_uri="https://evil.example.net/cb")
    policy = b.get("/login?" + _q(next=forged)).headers["Content-Security-Policy"]
    assert "evil.example.net" not in policy


def test_an_app_keeping_the_clients_page_in_its_state_goes_through_the_sign_in_and_back(
        app, smtp, deliver, rp):
    """oauth2-proxy's `state` is a nonce and the page the client asked for. With PKCE and a
    nonce, its request came to some 470 characters, and with the "sent to sign in" mark the way
    back through the sign-in was over the 512 it could carry: a signed-out client was told the
    app's sign-in did not work."""
    b = Browser(app)
    verifier, challenge = pkce()
    state = (secrets.token_urlsafe(32) + ":https://files.example.com/reports/2026/quarterly"
             "?team=accounts&view=summary&sort=desc&page=3")
    url = authorize_url(rp, challenge, state=state, nonce=secrets.token_urlsafe(32))
    first = b.get(url)
    assert first.status_code == 302, first.get_data(as_text=True)[:300]
    back_to = parse_qs(urlsplit(first.headers["Location"]).query)["next"][0]
    assert len(back_to) > 512
    assert _sign_in_again(b, first.headers["Location"], smtp, deliver) == back_to
    back = code_from(b.get(back_to))
    assert (back["_to"], back["state"]) == (REDIRECT, state)
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200
