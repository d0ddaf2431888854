"""WSGI fast paths: the commonest answer of a much-asked route, without Flask's machinery.

Two requests come far more often than any page: the web server's forward-auth question on
every request to a protected app (/auth/verify), and every waiting code page's poll a few
seconds apart (/login/code/status). Through Flask's request machinery and ClientGate's hooks
either answer costs several times the work itself, which is one cookie signature and one
indexed read. A fast path sits in front of Flask, inside ProxyFix so that forwarded headers
count as they do for the route, and answers only the plain cases, with exactly what the route
would answer. Anything else goes on to the route, which stays the authority: a fast path that
cannot answer, or fails, costs one wasted read and nothing more.
"""

from __future__ import annotations

import time
from typing import Optional

from sqlalchemy.engine import Connection, Engine
from werkzeug.http import parse_cookie
from werkzeug.sansio.utils import host_is_trusted

from extensions import db

# What a fast path answers: (status line, headers, body); Content-Length is added.
Answer = tuple[str, list[tuple[str, str]], bytes]


class FastPath:
    """Answer GET (and `METHODS`) requests to `PATH` with `answer(environ)` where it can."""

    PATH = ""
    METHODS: tuple[str, ...] = ("GET",)

    # A browser sends the same cookie with every request; its signature need not be checked
    # again for a minute (the cookie's own lifetime is days). Bounded: cleared when full.
    SIGNATURE_MEMORY = 4096
    SIGNATURE_SECONDS = 60.0

    def __init__(self, app, wsgi_app) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.cookie = app.config["SESSION_COOKIE_NAME"]
        self.serializer = app.session_interface.get_signing_serializer(app)
        self.max_age = int(app.permanent_session_lifetime.total_seconds())
        self._checked: dict[str, tuple[float, dict]] = {}
        self.engine: Optional[Engine] = None  # the app's, once asked for (see connect)

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH \
                and environ.get("REQUEST_METHOD") in self.METHODS:
            try:
                answer = self.answer(environ) if self.host_trusted(environ) else None
            except Exception:  # noqa: BLE001 - the route answers, and logs, whatever this can't
                answer = None
            if answer is not None:
                status, headers, body = answer
                start_response(status, [*headers, ("Content-Length", str(len(body)))])
                return [body]
        return self.wsgi_app(environ, start_response)

    def answer(self, environ) -> Optional[Answer]:
        """The route's answer to this request, or None to let the route give it."""
        raise NotImplementedError

    def host_trusted(self, environ) -> bool:
        """Flask refuses a Host outside TRUSTED_HOSTS with a 400: that is the route's to say."""
        trusted = self.app.config.get("TRUSTED_HOSTS")
        return not trusted or host_is_trusted(environ.get("HTTP_HOST", ""), trusted)

    def connect(self) -> Connection:
        """A connection from the app's own pool for this answer's one read. It costs one round
        trip: the pool's connections read in autocommit until a write (on PostgreSQL,
        db_setup.begin_at_first_write; SQLite's reads run outside transactions), and each is
        checked before use (db_setup.check_before_use). One the database dropped unnoticed
        makes the read fail, and the route answers instead."""
        if self.engine is None:
            with self.app.app_context():
                self.engine = db.engine
        return self.engine.connect()

    def session(self, environ) -> Optional[dict]:
        """The session cookie's contents, or None without one; a bad signature raises.

        The dict may be shared with other requests that sent the same cookie: read, never
        change it.
        """
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.cookie)
        if not value:
            return None
        known = self._checked.get(value)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1]
        data = self.serializer.loads(value, max_age=self.max_age)
        if not isinstance(data, dict):
            raise ValueError("a session cookie holds a dict")
        if len(self._checked) >= self.SIGNATURE_MEMORY:
            self._checked.clear()
        self._checked[value] = (now + self.SIGNATURE_SECONDS, data)
        return data
