"""An app's id_token_hint at the authorization endpoint names the user it expects.

It was ignored: an app renewing a sign-in silently (prompt=none) for the person it names got
a code for whoever was signed in to ClientGate on that browser, someone else on a shared
computer included. OpenID Connect Core 3.1.2.1: when the user the hint names is not signed in
(or signed in by this request), the OP should answer with an error such as login_required.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

from joserfc import jwt
from joserfc.jwk import KeySet

from services import clock
from tests.conftest import TEST_PASSWORD, Browser, add_user
from tests.oidc.conftest import REDIRECT, authorize_url, code_from, exchange, pkce

OTHER = "b@example.com"


def _id_token(b: Browser, rp) -> str:
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge)))
    return exchange(b.client, rp, back["code"], verifier).get_json()["id_token"]


def _sub(b: Browser, id_token: str) -> str:
    keys = KeySet.import_key_set(b.client.get("/oauth/jwks").get_json())
    return jwt.decode(id_token, keys).claims["sub"]


def test_a_silent_request_naming_someone_else_gets_login_required(app, sign_in, rp):
    add_user(app, OTHER)
    hint = _id_token(sign_in(OTHER, b=Browser(app)), rp)
    b = sign_in()  # client@example.com on this browser
    for given in (hint, "not-a-token", hint[:-4] + "AAAA"):
        back = code_from(b.get(authorize_url(rp, pkce()[1], prompt="none", id_token_hint=given)))
        assert back["_to"] == REDIRECT and back["error"] == "login_required", back
        assert "code" not in back and back["state"].startswith("st-")
        assert back["iss"] == "http://localhost"


def test_the_signed_in_users_own_hint_renews_silently_even_expired(app, sign_in, rp):
    b = sign_in()
    hint = _id_token(b, rp)
    for _ in range(3):  # the session kept in use; the id_token's hour runs out
        clock.advance(timedelta(minutes=21))
        b.get("/portal")
    verifier, challenge = pkce()
    back = code_from(b.get(authorize_url(rp, challenge, prompt="none", id_token_hint=hint)))
    assert back["code"], back
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert _sub(b, body["id_token"]) == _sub(b, hint)


def _sign_in_from(b: Browser, login_url: str, email: str, smtp, deliver):
    count = len(smtp.messages)
    b.get(login_url)
    b.post(login_url, {"email": email, "password": TEST_PASSWORD}, form_page=login_url)
    deliver()
    smtp.wait_for(count + 1)
    response = b.enter_code(smtp.last_to(email).code)
    assert response.status_code == 302
    return response.headers["Location"]


def test_an_interactive_request_naming_someone_else_asks_for_their_sign_in(
        app, sign_in, smtp, deliver, rp):
    add_user(app, OTHER)
    other = sign_in(OTHER, b=Browser(app))
    hint = _id_token(other, rp)
    b = sign_in()  # client@example.com
    asked = b.get(authorize_url(rp, pkce()[1], id_token_hint=hint))
    assert urlsplit(asked.headers["Location"]).path == "/login"
    # Signed in again as the same person, still not the one the app named: an error to it.
    back_to = _sign_in_from(b, asked.headers["Location"], "client@example.com", smtp, deliver)
    back = code_from(b.get(back_to))
    assert back["_to"] == REDIRECT and back["error"] == "login_required" and "code" not in back
    # Signed in as the person the hint names: their code.
    verifier, challenge = pkce()
    asked = b.get(authorize_url(rp, challenge, id_token_hint=hint))
    back_to = _sign_in_from(b, asked.headers["Location"], OTHER, smtp, deliver)
    assert "id_token_hint" not in parse_qs(urlsplit(back_to).query)  # too long to carry
    back = code_from(b.get(back_to))
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert _sub(b, body["id_token"]) == _sub(b, hint)


def test_an_unreadable_hint_on_an_interactive_request_changes_nothing(sign_in, rp):
    b = sign_in()
    assert code_from(b.get(authorize_url(rp, pkce()[1], id_token_hint="not-a-token")))["code"]


def test_a_browser_signed_out_is_sent_to_sign_in_as_the_person_the_hint_names(
        app, sign_in, smtp, deliver, rp):
    """The hint (some 900 characters) made the way back through the sign-in too long to
    carry (NEXT_LONGEST): a signed-out browser got "did not work" instead of the sign-in."""
    add_user(app, OTHER)
    hint = _id_token(sign_in(OTHER, b=Browser(app)), rp)
    b = Browser(app)
    asked = b.get(authorize_url(rp, pkce()[1], id_token_hint=hint))
    assert asked.status_code == 302 and urlsplit(asked.headers["Location"]).path == "/login"
    back_to = _sign_in_from(b, asked.headers["Location"], "client@example.com", smtp, deliver)
    back = code_from(b.get(back_to))
    assert back["error"] == "login_required" and "code" not in back  # not the one named
    b = Browser(app)
    verifier, challenge = pkce()
    asked = b.get(authorize_url(rp, challenge, id_token_hint=hint))
    back = code_from(b.get(_sign_in_from(b, asked.headers["Location"], OTHER, smtp, deliver)))
    body = exchange(b.client, rp, back["code"], verifier).get_json()
    assert _sub(b, body["id_token"]) == _sub(b, hint)


def test_hints_of_no_shape_get_an_answer_never_a_500(sign_in, rp):
    import base64
    import json

    def part(value) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    b = sign_in()
    forged = ".".join([part({"alg": "none"}), part({"iss": "http://localhost", "sub": "2"}), ""])
    for hint in ("é", "\x00", "a.b.c", "...", forged, "x" * 5000,
                 ".".join([part({"alg": "HS256"}), part({"sub": "2"}), "AAAA"])):
        back = code_from(b.get(authorize_url(rp, pkce()[1], prompt="none", id_token_hint=hint)))
        assert back["error"] == "login_required", (hint[:20], back)
