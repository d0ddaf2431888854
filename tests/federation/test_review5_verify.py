"""Fifth review: /auth/verify's answers to what Caddy (and Traefik) pass on from the browser."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from tests.conftest import make_config, running_app

RULES = "files.localhost any Shared files; files.localhost/admin/ admin"
CADDY = {"X-Forwarded-Method": "GET", "X-Forwarded-Proto": "http",
         "X-Forwarded-Host": "files.localhost", "X-Forwarded-Uri": "/live?room=2"}
# Caddy's forward_auth passes the browser's headers on, a WebSocket handshake's too.
WEBSOCKET = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


@pytest.fixture
def app(tmp_path, smtp):
    with running_app(make_config(tmp_path, smtp, PROTECTED_HOSTS="files.localhost",
                                 ACCESS_RULES=RULES, PROXY_FIX_X_HOST=1, PROXY_FIX_X_PROTO=1,
                                 TRUSTED_HOSTS=["localhost"])) as application:
        yield application


def test_a_websocket_handshake_is_judged_like_any_request(app, browser, sign_in, user):
    # Werkzeug's router refused it (400 "could not be understood", and a page rewriting the
    # session cookie on the app's host): no app's WebSocket worked behind Caddy.
    answer = browser.client.get("/auth/verify", headers={**CADDY, **WEBSOCKET})
    assert answer.status_code == 302
    assert parse_qs(urlsplit(answer.headers["Location"]).query) == {
        "next": ["http://files.localhost/live?room=2"]}

    b = sign_in()
    answer = b.client.get("/auth/verify", headers={**CADDY, **WEBSOCKET})
    assert answer.status_code == 200, answer.get_data(as_text=True)[:300]
    assert answer.headers["Remote-Email"] == "client@example.com"
    assert "Set-Cookie" not in answer.headers
    closed = b.client.get("/auth/verify", headers={**CADDY, **WEBSOCKET,
                                                   "X-Forwarded-Uri": "/admin/live"})
    assert closed.status_code == 403
    # nginx does not pass Upgrade on, but were it to, the answer is the same.
    nginx = {"X-Forwarded-Host": "files.localhost",
             "X-Original-URL": "http://files.localhost/live"}
    assert b.client.get("/auth/verify", headers={**nginx, **WEBSOCKET}).status_code == 200
