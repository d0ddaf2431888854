"""OpenID Connect in the benchmark: the token endpoint and userinfo, as ratios to the ceiling.

bench/run.py calls `measure` while ClientGate is up under gunicorn. An app is registered
and authorization codes are written directly (hashes, PKCE challenges, each for a bench user),
as if each client had just come back from signing in, so the token phase measures the token
endpoint alone: client authentication, the code claimed once, PKCE, the access token stored,
the RS256 id_token signed. The userinfo phase then uses the access tokens it got.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import secrets
import threading
from datetime import timedelta

from sqlalchemy import insert, select

from load import Browser, expect

REDIRECT_URI = "https://files.bench.example/oidc/callback"
STEPS = ("POST /oauth/token", "POST /oauth/userinfo")


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=") \
        .decode()


def prepare(app, count: int) -> tuple[str, str, list[tuple[str, str]]]:
    """A registered app and `count` fresh codes (code, verifier) of the bench's users."""
    from extensions import db
    from models import AuthSession, OAuthCode, User
    from services import clock
    from services.federation import oidc

    with app.app_context():
        new = oidc.add_client("Bench app", [REDIRECT_URI])
        oidc.ensure_signing_key()  # made once, as at an app's first sign-in
        user_ids = list(db.session.scalars(select(User.id).where(User.role == "client")
                                           .order_by(User.id).limit(500)))
        at = clock.now()
        # A code is good only while the session it was issued under is live: one signed-in
        # session per user, as if each had just signed in for the app.
        logins = []
        for user_id in user_ids:
            login = AuthSession(token_hash=secrets.token_hex(32), user_id=user_id, created_at=at,
                                last_seen_at=at, amr=["pwd", "otp", "mfa"])
            db.session.add(login)
            logins.append(login)
        db.session.flush()
        pairs, rows = [], []
        for n in range(count):
            code, verifier = secrets.token_urlsafe(36), secrets.token_urlsafe(48)
            pairs.append((code, verifier))
            rows.append({
                "code_hash": hashlib.sha256(code.encode()).hexdigest(),
                "client_id": new.row.id, "user_id": user_ids[n % len(user_ids)],
                "auth_session_id": logins[n % len(logins)].id,
                "redirect_uri": REDIRECT_URI, "scope": "openid email profile",
                "nonce": secrets.token_hex(8), "code_challenge": _s256(verifier),
                "code_challenge_method": "S256", "auth_time": at, "amr": ["pwd", "otp", "mfa"],
                # Written before the phase starts, so they must outlive its warm-up: the
                # lifetime is the only thing that differs from a code the endpoint made.
                "created_at": at, "expires_at": at + timedelta(minutes=30),
            })
        db.session.execute(insert(OAuthCode.__table__), rows)
        db.session.commit()
        client_id = new.row.client_id
    return client_id, new.secret, pairs


def measure(app, port: int, server, phase, settings, out) -> None:
    """Two phases: the token endpoint (prepared codes), then userinfo (the tokens it gave)."""
    count = 20_000
    client_id, secret, pairs = prepare(app, count)
    todo = iter(pairs)
    lock = threading.Lock()
    tokens: list[str] = []

    def token(rec, n):
        with lock:
            item = next(todo, None)
        if item is None:
            return False
        code, verifier = item
        response = Browser(port).request("POST", "/oauth/token", {
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": client_id, "client_secret": secret})
        expect("POST /oauth/token", response, 200)
        rec.step("POST /oauth/token", response.seconds)
        tokens.append(json.loads(response.body)["access_token"])
        return True

    phase("oidc_token", "OpenID Connect token endpoint (code, PKCE, id_token)", token,
          settings.busy, server, max_tasks=count)
    if not tokens:
        out("  OpenID Connect userinfo: not measured (no access token came back)")
        return
    turn = itertools.count()

    def userinfo(rec, n):
        access_token = tokens[next(turn) % len(tokens)]
        response = Browser(port).request("POST", "/oauth/userinfo",
                                         {"access_token": access_token})
        expect("POST /oauth/userinfo", response, 200)
        rec.step("POST /oauth/userinfo", response.seconds)
        return True

    phase("oidc_userinfo", "OpenID Connect userinfo", userinfo, settings.busy, server)
