"""The userinfo endpoint's refusals in the words of RFC 6750 3.1 (OpenID Connect Core 5.3.3).

A request with no access token (or one offered in a scheme other than Bearer) was answered
`WWW-Authenticate: bearer error="missing_authorization"` or `error="unsupported_token_type"`:
neither is an error code RFC 6750 defines, and for a request that carries no credentials the
resource server should say only which scheme it takes. A token sent twice (the header and a
form) was taken from the header; RFC 6750 names that `invalid_request`.
"""

from __future__ import annotations

from tests.oidc.conftest import authorize_url, code_from, exchange, pkce


def _access_token(sign_in, rp) -> tuple:
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    return b, exchange(b.client, rp, back["code"], verifier).get_json()["access_token"]


def _challenge(response) -> str:
    return response.headers["WWW-Authenticate"]


def test_a_request_without_a_token_is_told_the_scheme_and_nothing_else(app, rp):
    client = app.test_client()
    for response in (client.get("/oauth/userinfo"),
                     client.post("/oauth/userinfo", data={}),
                     client.get("/oauth/userinfo", headers={"Authorization": "Basic YTpi"}),
                     client.get("/oauth/userinfo", headers={"Authorization": "Bearer"})):
        assert response.status_code == 401
        assert _challenge(response).lower().startswith("bearer")
        assert "error" not in _challenge(response)  # RFC 6750 3.1: no error code here
        assert "missing_authorization" not in response.get_data(as_text=True)
        assert "unsupported_token_type" not in response.get_data(as_text=True)


def test_a_wrong_token_is_invalid_token(app, rp):
    response = app.test_client().get("/oauth/userinfo", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401 and 'error="invalid_token"' in _challenge(response)
    assert response.get_json()["error"] == "invalid_token"


def test_a_token_sent_two_ways_at_once_is_invalid_request(sign_in, rp):
    b, token = _access_token(sign_in, rp)
    response = b.client.post("/oauth/userinfo", data={"access_token": token},
                             headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert 'error="invalid_request"' in _challenge(response)
    # Each way alone still works, the scheme in any case and after any whitespace.
    assert b.client.post("/oauth/userinfo", data={"access_token": token}).status_code == 200
    for header in (f"Bearer {token}", f"bearer {token}", f"Bearer\t{token}", f"Bearer  {token}"):
        assert b.client.get("/oauth/userinfo",
                            headers={"Authorization": header}).status_code == 200, header


def test_a_token_without_openid_is_insufficient_scope_with_its_challenge(sign_in, rp):
    """RFC 6750 3: a refused request MUST carry WWW-Authenticate; the 403 had none. A token
    from a request without `openid` (plain OAuth) cannot read userinfo (OIDC Core 5.3)."""
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge, scope="email")))
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert "id_token" not in body
    response = b.client.get("/oauth/userinfo",
                            headers={"Authorization": f"Bearer {body['access_token']}"})
    assert response.status_code == 403 and response.get_json()["error"] == "insufficient_scope"
    assert _challenge(response).startswith('Bearer error="insufficient_scope"')
    assert 'scope="openid"' in _challenge(response)
