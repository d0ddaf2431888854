"""A parameter sent twice is invalid_request (RFC 6749 3.1, 3.2, 4.1.2.1, 5.2), not "the
first one counts".

The token endpoint took the first of two `code`s (or `code_verifier`s, `redirect_uri`s), and
the authorization endpoint the first of two `nonce`s, `prompt`s or `max_age`s: whatever read
the other one (a proxy, a log, the app's own check) saw a different request from ours.
"""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
from werkzeug.datastructures import MultiDict

from tests.oidc.conftest import (
    REDIRECT, authorize_url, basic_auth, code_from, exchange, pkce, token_form,
)


@pytest.mark.parametrize("name", ["code", "code_verifier", "redirect_uri", "grant_type"])
def test_a_token_request_repeating_a_parameter_is_invalid_request(sign_in, rp, name):
    b = sign_in()
    fields = token_form(b, rp)
    form = MultiDict(list(fields.items()) + [(name, fields[name])])
    response = b.client.post("/oauth/token", data=form,
                             headers=basic_auth(rp.client_id, rp.secret))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"
    assert "no-store" in response.headers["Cache-Control"]


@pytest.mark.parametrize("name, value", [("nonce", "n-2"), ("prompt", "login"),
                                         ("max_age", "0"), ("code_challenge_method", "S256")])
def test_an_authorization_request_repeating_a_parameter_is_invalid_request(sign_in, rp, name,
                                                                          value):
    b = sign_in()
    url = authorize_url(rp, pkce()[1], prompt="none", max_age="3600") + "&" + \
        urlencode({name: value})
    back = code_from(b.get(url))
    assert back["_to"] == REDIRECT and back["error"] == "invalid_request", back
    assert "code" not in back and back["state"].startswith("st-")


def test_requests_without_repeats_still_work(sign_in, rp):
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge, prompt="none", max_age="3600")))
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200
