"""prompt values ClientGate does not offer are refused, not silently read as "no prompt".

Discovery says `prompt_values_supported: ["none", "login"]`, yet `prompt=select_account`,
or any other value sent a signed-in browser straight back to the app with a code for whoever
was signed in. OpenID Connect Core 3.1.2.1: an OP that cannot obtain an account choice MUST
return an error (account_selection_required); a value not offered is invalid_request
(Initiating User Registration 1.0, 4). Each goes back to the app's registered address, with
state and iss, before any sign-in. `consent` is met: the firm consented for its clients when
it registered its own app, and apps that always send it must keep working.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from tests.conftest import Browser
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, exchange, pkce


@pytest.mark.parametrize("prompt, error", [
    ("select_account", "account_selection_required"),
    ("create", "invalid_request"),
    ("bogus", "invalid_request"),
    ("none consent", "invalid_request"),
])
def test_a_prompt_we_do_not_offer_goes_back_as_an_error(app, sign_in, rp, prompt, error):
    signed_in = sign_in()
    for b in (signed_in, Browser(app)):  # signed in, and before any sign-in alike
        back = code_from(b.get(authorize_url(rp, pkce()[1], prompt=prompt)))
        assert back["_to"] == REDIRECT and back["error"] == error, (prompt, back)
        assert "code" not in back and back["state"].startswith("st-")
        assert back["iss"] == "http://localhost"


def test_the_prompts_we_offer_still_work(app, sign_in, rp):
    b = sign_in()
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge, prompt="none")))
    assert exchange(b.client, rp, back["code"], verifier).status_code == 200
    asked = b.get(authorize_url(rp, pkce()[1], prompt="login"))
    assert urlsplit(asked.headers["Location"]).path == "/login"
    assert code_from(b.get(authorize_url(rp, pkce()[1], prompt="")))["code"]
    assert code_from(b.get(authorize_url(rp, pkce()[1], prompt="consent")))["code"]
    asked = b.get(authorize_url(rp, pkce()[1], prompt="login consent"))
    assert urlsplit(asked.headers["Location"]).path == "/login"
    doc = b.client.get("/.well-known/openid-configuration").get_json()
    assert doc["prompt_values_supported"] == ["none", "login", "consent"]
