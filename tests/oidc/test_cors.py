"""Single-page apps (`--public`) call the token and userinfo endpoints from the browser: CORS
for the origins of public clients' redirect addresses only, and never with credentials."""

from __future__ import annotations

import pytest

from tests.oidc.conftest import authorize_url, code_from, pkce, register

PHONE = "https://phone.example.com"  # public_rp's redirect address is PHONE + "/cb"


def _cors(response) -> dict[str, str]:
    return {k: v for k, v in response.headers.items() if k.lower().startswith("access-control")}


def _preflight(client, path: str, origin: str, method: str, headers: str = ""):
    asked = {"Origin": origin, "Access-Control-Request-Method": method}
    if headers:
        asked["Access-Control-Request-Headers"] = headers
    return client.options(path, headers=asked)


def test_a_single_page_app_signs_in_from_its_own_origin(app, sign_in, public_rp):
    """cli.py offered --public for single-page apps, but the token and userinfo endpoints sent
    no CORS headers, so no browser app could read their answers."""
    b = sign_in()
    client = app.test_client()
    preflight = _preflight(client, "/oauth/token", PHONE, "POST", "content-type")
    assert preflight.status_code in (200, 204)
    assert _cors(preflight)["Access-Control-Allow-Origin"] == PHONE
    assert "POST" in _cors(preflight)["Access-Control-Allow-Methods"]
    assert "content-type" in _cors(preflight)["Access-Control-Allow-Headers"].lower()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(public_rp, challenge)))
    token = client.post("/oauth/token", headers={"Origin": PHONE}, data={
        "grant_type": "authorization_code", "code": back["code"], "code_verifier": verifier,
        "redirect_uri": public_rp.redirect_uri, "client_id": public_rp.client_id})
    assert token.status_code == 200 and _cors(token)["Access-Control-Allow-Origin"] == PHONE
    assert "Origin" in token.headers["Vary"]
    preflight = _preflight(client, "/oauth/userinfo", PHONE, "GET", "authorization")
    assert _cors(preflight)["Access-Control-Allow-Origin"] == PHONE
    assert "authorization" in _cors(preflight)["Access-Control-Allow-Headers"].lower()
    info = client.get("/oauth/userinfo", headers={
        "Origin": PHONE, "Authorization": f"Bearer {token.get_json()['access_token']}"})
    assert info.status_code == 200 and _cors(info)["Access-Control-Allow-Origin"] == PHONE
    # A refusal is readable too: the app can tell the client why.
    refused = client.get("/oauth/userinfo", headers={"Origin": PHONE,
                                                      "Authorization": "Bearer nope"})
    assert refused.status_code == 401 and _cors(refused)["Access-Control-Allow-Origin"] == PHONE


@pytest.mark.parametrize("origin", [
    "https://files.example.com",  # a confidential app's origin: its server calls, not a browser
    "https://evil.example.net", "null", "https://phone.example.com.evil.example.net",
    "http://phone.example.com", "https://phone.example.com:8443",
])
def test_no_other_origin_may_read_the_token_or_userinfo_endpoints(app, rp, public_rp, origin):
    client = app.test_client()
    for path, method in (("/oauth/token", "POST"), ("/oauth/userinfo", "GET")):
        assert "Access-Control-Allow-Origin" not in _preflight(client, path, origin, method).headers
    token = client.post("/oauth/token", headers={"Origin": origin},
                        data={"grant_type": "authorization_code", "code": "x"})
    assert "Access-Control-Allow-Origin" not in token.headers


def test_never_with_credentials(app, public_rp):
    client = app.test_client()
    for path, method in (("/oauth/token", "POST"), ("/oauth/userinfo", "GET"),
                         ("/oauth/jwks", "GET"), ("/.well-known/openid-configuration", "GET")):
        for response in (_preflight(client, path, PHONE, method),
                         client.open(path, method=method, headers={"Origin": PHONE})):
            assert "Access-Control-Allow-Credentials" not in response.headers, path
            assert "Access-Control-Allow-Origin" in response.headers, path


def test_the_public_documents_are_open_to_every_origin(app):
    client = app.test_client()
    for path in ("/oauth/jwks", "/.well-known/openid-configuration"):
        assert client.get(path).headers["Access-Control-Allow-Origin"] == "*"
        preflight = _preflight(client, path, "https://anyone.example.org", "GET")
        assert _cors(preflight)["Access-Control-Allow-Origin"] == "*"


def test_an_origin_is_matched_as_browsers_write_it(app, sign_in, user):
    register(app, "Dev app", ("HTTPS://Dev.Example.com:443/cb", "http://localhost:8080/cb"),
             public=True)
    client = app.test_client()
    for origin in ("https://dev.example.com", "http://localhost:8080"):
        preflight = _preflight(client, "/oauth/token", origin, "POST")
        assert _cors(preflight)["Access-Control-Allow-Origin"] == origin
