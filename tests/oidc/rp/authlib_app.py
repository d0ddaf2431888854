"""A relying party written with Authlib's Flask client, as an app's developer would.

Run by tests/oidc/test_relying_parties.py under gunicorn. Settings from the environment:
RP_ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_BASE_URL (this app's own address).
"""

from __future__ import annotations

import os
from html import escape
from urllib.parse import urlencode

from authlib.integrations.flask_client import OAuth
from flask import Flask, redirect, request, session


def create_app() -> Flask:
    app = Flask(__name__)
    app.secret_key = os.environ["RP_SECRET_KEY"]
    app.config["SESSION_COOKIE_NAME"] = "authlib_rp"
    base = os.environ["RP_BASE_URL"].rstrip("/")
    oauth = OAuth(app)
    provider = oauth.register(
        "clientgate",
        client_id=os.environ["RP_CLIENT_ID"],
        client_secret=os.environ["RP_CLIENT_SECRET"],
        server_metadata_url=os.environ["RP_ISSUER"].rstrip("/")
        + "/.well-known/openid-configuration",
        client_kwargs={"scope": "openid email profile", "code_challenge_method": "S256"},
    )

    @app.route("/")
    def index():
        user = session.get("user")
        if not user:
            return ('<h1>Authlib app</h1><p id="who">Not signed in</p>'
                    '<a id="sign-in" href="/login">Sign in with ClientGate</a>')
        return (f'<h1>Authlib app</h1><p id="who">Signed in as {escape(user["email"])}</p>'
                f'<p id="sub">{escape(user["sub"])}</p><p id="amr">{escape(user["amr"])}</p>'
                f'<p id="userinfo">{escape(user["userinfo_email"])}</p>'
                '<a id="sign-out" href="/logout">Sign out</a>')

    @app.route("/login")
    def login():
        return provider.authorize_redirect(base + "/callback")

    @app.route("/callback")
    def callback():
        if "error" in request.args:
            return f'<p id="error">{escape(request.args["error"])}</p>', 400
        token = provider.authorize_access_token()  # checks state, PKCE, the id_token
        claims = token["userinfo"]  # the id_token's claims, verified by Authlib
        info = provider.userinfo(token=token)
        session["user"] = {"email": claims["email"], "sub": claims["sub"],
                           "amr": " ".join(claims.get("amr", [])),
                           "userinfo_email": info["email"]}
        session["id_token"] = token["id_token"]
        return redirect("/")

    @app.route("/logout")
    def logout():
        id_token = session.pop("id_token", None)
        session.clear()
        end = provider.load_server_metadata()["end_session_endpoint"]
        return redirect(end + "?" + urlencode({
            "id_token_hint": id_token or "", "post_logout_redirect_uri": base + "/",
            "state": "bye"}))

    return app
