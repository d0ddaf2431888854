"""A relying party written with the `oic` package (pyoidc), as an app's developer would.

Run by tests/oidc/test_relying_parties.py under gunicorn (one worker: oic keeps its
per-login state in the Client object). Settings as for authlib_app.py.
"""

from __future__ import annotations

import os
from html import escape

from flask import Flask, redirect, request, session
from oic import rndstr
from oic.oic import Client
from oic.oic.message import AccessTokenResponse, AuthorizationResponse, RegistrationResponse
from oic.utils.authn.client import CLIENT_AUTHN_METHOD


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = os.environ["RP_SECRET_KEY"]
    app.config["SESSION_COOKIE_NAME"] = "oic_rp"
    base = os.environ["RP_BASE_URL"].rstrip("/")
    client = Client(client_authn_method=CLIENT_AUTHN_METHOD)
    client.store_registration_info(RegistrationResponse(
        client_id=os.environ["RP_CLIENT_ID"], client_secret=os.environ["RP_CLIENT_SECRET"],
        redirect_uris=[base + "/callback"]))
    verifiers: dict[str, str] = {}

    def provider():
        if not client.provider_info:
            client.provider_config(os.environ["RP_ISSUER"])  # discovery and the JWKS
        return client

    @app.route("/")
    def index():
        user = session.get("user")
        if not user:
            return ('<h1>oic app</h1><p id="who">Not signed in</p>'
                    '<a id="sign-in" href="/login">Sign in with ClientGate</a>')
        return (f'<h1>oic app</h1><p id="who">Signed in as {escape(user["email"])}</p>'
                f'<p id="sub">{escape(user["sub"])}</p><p id="amr">{escape(user["amr"])}</p>'
                f'<p id="userinfo">{escape(user["userinfo_email"])}</p>')

    @app.route("/login")
    def login():
        rp = provider()
        state, nonce = rndstr(), rndstr()
        pkce, verifier = rp.add_code_challenge()
        verifiers[state] = verifier
        session["state"] = state
        request_args = {"response_type": "code", "scope": ["openid", "email", "profile"],
                        "state": state, "nonce": nonce, "redirect_uri": base + "/callback",
                        "client_id": rp.client_id, **pkce}
        auth = rp.construct_AuthorizationRequest(request_args=request_args)
        return redirect(auth.request(rp.authorization_endpoint))

    @app.route("/callback")
    def callback():
        rp = provider()
        answer = rp.parse_response(AuthorizationResponse, info=request.query_string.decode(),
                                   sformat="urlencoded")
        if "error" in answer:
            return f'<p id="error">{escape(answer["error"])}</p>', 400
        state = session.pop("state", None)
        if answer["state"] != state:
            return '<p id="error">state mismatch</p>', 400
        token = rp.do_access_token_request(
            state=state, request_args={"code": answer["code"], "redirect_uri": base + "/callback",
                                       "code_verifier": verifiers.pop(state)},
            authn_method="client_secret_basic")
        if not isinstance(token, AccessTokenResponse):
            return f'<p id="error">{escape(str(token.to_dict()))}</p>', 400
        claims = token["id_token"]  # oic checked its signature, iss, aud and nonce
        info = rp.do_user_info_request(state=state)
        session["user"] = {"email": claims["email"], "sub": claims["sub"],
                           "amr": " ".join(claims.get("amr", [])),
                           "userinfo_email": info["email"]}
        return redirect("/")

    return app
