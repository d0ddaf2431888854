"""ClientGate under gunicorn behind a real web server, shared by a module's tests."""

from __future__ import annotations

import html
from contextlib import contextmanager
from urllib.parse import urlsplit

from extensions import db
from tests.conftest import AS_SERVERS_HASH, add_user, make_config
from tests.federation.web_servers import Upstream, upstream_app
from tests.production.conftest import Databases, Gunicorn, flask_cli


def app_showing_cookies(environ, start_response):
    """The upstream app; at any path ending in /cookies, the Cookie header it was sent, so a
    test can see which cookies the web server passes on to the firm's app."""
    if not environ.get("PATH_INFO", "").endswith("/cookies"):
        return upstream_app(environ, start_response)
    body = f"<span id='cookie'>{html.escape(environ.get('HTTP_COOKIE', ''))}</span>".encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


class CookieUpstream(Upstream):
    """The upstream app in a thread, showing the cookies it was sent (app_showing_cookies)."""

    def __init__(self) -> None:
        super().__init__()
        self._server.app = app_showing_cookies  # werkzeug's server calls its `app` per request


@contextmanager
def clientgate_under_gunicorn(folder, smtp, portal_url: str, **env: str):
    """gunicorn (two workers) on a migrated database, with a client, a support person and an
    admin; yields the server and an app of this process on the same database."""
    from app import create_app

    databases = Databases(folder)
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    server = Gunicorn(url, smtp, folder, workers=2)
    # Set after construction: the fixture's own PORTAL_URL would clash with a keyword.
    server.env.update(PORTAL_URL=portal_url, PROXY_FIX_X_HOST="1", PROXY_FIX_X_PROTO="1",
                      TRUSTED_HOSTS="127.0.0.1," + urlsplit(portal_url).hostname, **env)
    application = create_app(make_config(folder, SQLALCHEMY_DATABASE_URI=url, **AS_SERVERS_HASH))
    try:
        add_user(application, "client@example.com")
        add_user(application, "staff@example.com", role="support")
        server.start()
        yield server, application
    finally:
        server.stop()
        with application.app_context():
            db.session.remove()
            db.engine.dispose()
        databases.drop_all()
