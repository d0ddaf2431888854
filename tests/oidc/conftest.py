"""OpenID Connect fixtures: registered apps, PKCE pairs, and an authorization code in hand."""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from typing import Optional
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from extensions import db
from services import delivery
from services.federation import oidc
from tests.conftest import TEST_PASSWORD, Browser

REDIRECT = "https://files.example.com/oidc/callback"


@dataclass
class App:
    client_id: str
    secret: Optional[str]
    redirect_uri: str


def register(app, name="Files", redirect_uris=(REDIRECT,), public=False, post_logout=()):
    with app.app_context():
        new = oidc.add_client(name, list(redirect_uris), public=public,
                              post_logout_uris=list(post_logout))
        db.session.commit()
        return App(new.row.client_id, new.secret, redirect_uris[0])


def signed_in(app, smtp, email: str = "client@example.com") -> Browser:
    """A browser signed in through the front door of an app made with its own config
    (running_app), which the `sign_in` fixture (bound to the `app` fixture) cannot reach."""
    b = Browser(app)
    count = len(smtp.messages)
    b.post("/login", {"email": email, "password": TEST_PASSWORD})
    with app.app_context():
        delivery.run_once()
    smtp.wait_for(count + 1)
    response = b.enter_code(smtp.last_to(email).code)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    return b


@pytest.fixture
def rp(app, user) -> App:
    """A confidential app (like Nextcloud's user_oidc)."""
    return register(app)


@pytest.fixture
def public_rp(app, user) -> App:
    return register(app, "Phone app", ("https://phone.example.com/cb",), public=True)


def pkce() -> tuple[str, str]:
    """A code_verifier and its S256 code_challenge (RFC 7636 4.1, 4.2)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(rp: App, challenge: Optional[str] = None, **extra) -> str:
    params = {"response_type": "code", "client_id": rp.client_id, "redirect_uri": rp.redirect_uri,
              "scope": "openid email profile", "state": "st-" + secrets.token_hex(4),
              "nonce": "n-" + secrets.token_hex(8)}
    if challenge:
        params.update(code_challenge=challenge, code_challenge_method="S256")
    params.update(extra)
    return "/oauth/authorize?" + urlencode({k: v for k, v in params.items() if v is not None})


def code_from(response) -> dict:
    """The query of the redirect back to the app (code and state, or error)."""
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    location = response.headers["Location"]
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()} | {
        "_to": location.split("?")[0]}


def basic_auth(client_id: str, secret: str) -> dict:
    """The Authorization header of a client authenticating with HTTP Basic (RFC 6749 2.3.1)."""
    return {"Authorization": "Basic "
            + base64.b64encode(f"{client_id}:{secret}".encode()).decode()}


def token_form(b: Browser, rp: App) -> dict:
    """A token request's form for a code just issued to signed-in `b`, with its verifier."""
    verifier, challenge = pkce()
    code = code_from(b.get(authorize_url(rp, challenge)))["code"]
    return {"grant_type": "authorization_code", "code": code, "redirect_uri": rp.redirect_uri,
            "code_verifier": verifier}


def exchange(client, rp: App, code: str, verifier: Optional[str] = None, *,
             secret: Optional[str] = "use-rp", redirect_uri: Optional[str] = None):
    data = {"grant_type": "authorization_code", "code": code,
            "redirect_uri": redirect_uri or rp.redirect_uri}
    if verifier:
        data["code_verifier"] = verifier
    headers = {}
    if secret == "use-rp":
        secret = rp.secret
    if secret is not None:
        headers = basic_auth(rp.client_id, secret)
    else:
        data["client_id"] = rp.client_id
    return client.post("/oauth/token", data=data, headers=headers)
