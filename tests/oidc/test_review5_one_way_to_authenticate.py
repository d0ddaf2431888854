"""A token request authenticates its client one way (RFC 6749 2.3, 5.2: invalid_request for
"more than one mechanism for authenticating the client" or "multiple credentials").

A request with Basic credentials and a client_secret in the form as well was served, on the
header's word alone, whatever the form said.
"""

from __future__ import annotations

import pytest

from tests.oidc.conftest import (
    authorize_url, basic_auth, code_from, exchange, pkce, token_form,
)


@pytest.mark.parametrize("form", [
    {"client_secret": "use-rp"}, {"client_secret": "something else"},
    {"client_id": "cg-" + "Z" * 24},
])
def test_basic_credentials_and_form_credentials_at_once_are_invalid_request(sign_in, rp, form):
    b = sign_in()
    data = token_form(b, rp)
    data.update({k: rp.secret if v == "use-rp" else v for k, v in form.items()})
    response = b.client.post("/oauth/token", data=data, headers=basic_auth(rp.client_id, rp.secret))
    assert response.status_code == 400 and response.get_json()["error"] == "invalid_request"


def test_each_way_alone_and_basic_with_its_own_client_id_still_work(sign_in, rp):
    b = sign_in()
    for how in ("basic", "post", "basic and client_id"):
        data = token_form(b, rp)
        headers = {}
        if how == "post":
            data.update(client_id=rp.client_id, client_secret=rp.secret)
        else:
            headers = basic_auth(rp.client_id, rp.secret)
            if how == "basic and client_id":
                data["client_id"] = rp.client_id  # RFC 6749 3.2.1: a client MAY name itself
        assert b.client.post("/oauth/token", data=data, headers=headers).status_code == 200, how
    verifier, challenge = pkce()
    code = code_from(b.get(authorize_url(rp, challenge)))["code"]
    assert exchange(b.client, rp, code, verifier).status_code == 200
