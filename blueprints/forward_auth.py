"""GET /auth/verify: the forward-auth endpoint the web server asks about every request.

nginx's auth_request wants 200 or 401/403 and throws the body away; Caddy's forward_auth and
Traefik's ForwardAuth (which send X-Forwarded-Method) pass a refusal on to the browser, so to
them the endpoint answers what the browser should see: a redirect to sign in, or a page.
"""

from __future__ import annotations

import time

from flask import Blueprint, Response, current_app, redirect, render_template, request, session

from blueprints.safety import safe_next
from extensions import csrf, limiter
from services import branding
from services.federation import access, forward_auth
from services.urls import absolute_url, portal_origin

bp = Blueprint("forward_auth", __name__)
# The web server asks from its own address on every request: a per-address limit would shut
# everyone out at once, and a GET here changes nothing a CSRF token protects.
limiter.exempt(bp)
csrf.exempt(bp)


@limiter.request_filter
def _not_counted() -> bool:
    """Exempt before Flask-Limiter works out any limit at all: this is asked every request."""
    return request.endpoint == "forward_auth.verify"


@bp.route("/auth/verify", methods=["GET", "HEAD"])
def verify():
    """200 with the Remote-* headers for a live session allowed here; else 401, 302 or 403."""
    config = current_app.config
    url = forward_auth.original_url(request, config)
    for_browser = "X-Forwarded-Method" in request.headers
    user = forward_auth.live_user(session.get("sid"), session.get("_user_id"))
    if user is None:
        if not for_browser:
            return Response(status=401)
        target = safe_next(url)
        login = absolute_url("auth.login", next=target) if target else absolute_url("auth.login")
        return redirect(login, 302)
    decision = access.decide(user, url)
    if decision.allowed:
        return Response(status=200, headers=forward_auth.identity_headers(user))
    if not for_browser:
        return Response(status=403)
    return forbidden_page(user, url, decision)


def forbidden_page(user, url, decision):
    """The 403 page in ClientGate's words, shown on the protected app's own address."""
    response = Response(render_template(
        "federation/forbidden.html", user=user, url=url if safe_next(url) else None,
        reason=decision.reason, portal_home=absolute_url("portal.home"),
        asset_root=portal_origin(),
    ), status=403)
    # The page may be shown on another host than the portal's: its stylesheet and logo come
    # from the portal, so the policy names the portal's origin beside 'self'.
    origin = portal_origin()
    logo = branding.logo_origin(current_app.extensions["brand"]) or ""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self' {origin}; img-src 'self' {origin} {logo} data:; "
        f"connect-src 'self' {origin}; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


class FastPath:
    """WSGI middleware answering the common question, a live session allowed in, without Flask.

    The web server asks about every request to the app; through Flask's request machinery and
    ClientGate's hooks the answer costs several times what the work itself does (one cookie
    signature, one indexed read). This answers only the two plain cases, with exactly what the
    route above would answer: no session cookie → 401; a live session that the rules let in →
    200 with the Remote-* headers. Anything else — a redirect or page for Caddy or Traefik, a
    bad signature, a session ended, idle or due its once-a-minute touch, a closed account, a
    refusal, an untrusted Host — goes on to the route, which stays the authority. It sits
    inside ProxyFix, so the forwarded headers count exactly as they do for the route.
    """

    PATH = "/auth/verify"

    def __init__(self, app, wsgi_app) -> None:
        from datetime import timedelta

        from extensions import db

        self.app = app
        self.wsgi_app = wsgi_app
        self.cookie = app.config["SESSION_COOKIE_NAME"]
        self.serializer = app.session_interface.get_signing_serializer(app)
        self.max_age = int(app.permanent_session_lifetime.total_seconds())
        self.idle = timedelta(minutes=app.config["SESSION_IDLE_MINUTES"])
        self.absolute = timedelta(hours=app.config["SESSION_ABSOLUTE_HOURS"])
        with app.app_context():
            self.engine = db.engine
        self._checked: dict = {}

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == self.PATH and environ.get("REQUEST_METHOD") in (
                "GET", "HEAD") and "HTTP_X_FORWARDED_METHOD" not in environ:
            try:
                answer = self.answer(environ)
            except Exception:  # noqa: BLE001 - the route answers, and logs, whatever this can't
                answer = None
            if answer is not None:
                status, headers = answer
                start_response(status, [*headers, ("Content-Length", "0"),
                                        ("Cache-Control", "no-store"),
                                        ("X-Content-Type-Options", "nosniff")])
                return [b""]
        return self.wsgi_app(environ, start_response)

    # A browser sends the same cookie with every request; its signature need not be checked
    # again for a minute (the cookie's own lifetime is days). Bounded: cleared when full.
    SIGNATURE_MEMORY = 4096
    SIGNATURE_SECONDS = 60.0

    def session_of(self, value: str):
        """(sid, _user_id) of a session cookie whose signature is good (BadSignature if not)."""
        known = self._checked.get(value)
        now = time.monotonic()
        if known is not None and known[0] > now:
            return known[1], known[2]
        data = self.serializer.loads(value, max_age=self.max_age)
        found = (now + self.SIGNATURE_SECONDS, data.get("sid"), data.get("_user_id"))
        if len(self._checked) >= self.SIGNATURE_MEMORY:
            self._checked.clear()
        self._checked[value] = found
        return found[1], found[2]

    def answer(self, environ):
        from werkzeug.http import parse_cookie
        from werkzeug.wrappers import Request as WerkzeugRequest
        from werkzeug.sansio.utils import host_is_trusted

        from services import clock
        from services.signin import sessions
        from services.federation.forward_auth import _LOOKUP, Identity

        trusted = self.app.config.get("TRUSTED_HOSTS")
        host = environ.get("HTTP_HOST", "")
        if trusted and not host_is_trusted(host, trusted):
            return None
        value = parse_cookie(environ.get("HTTP_COOKIE", "")).get(self.cookie)
        if not value:
            return "401 UNAUTHORIZED", []
        token, user_id = self.session_of(value)
        if not isinstance(token, str) or not isinstance(user_id, str) or not user_id.isdigit():
            return None
        with self.engine.connect() as connection:
            row = connection.execute(
                _LOOKUP, {"token_hash": sessions.token_hash(token)}).first()
        at = clock.now()
        if row is None or row.user_id != int(user_id) or row.deactivated_at is not None \
                or row.revoked_at is not None or row.last_seen_at + self.idle <= at \
                or row.created_at + self.absolute <= at \
                or at - row.last_seen_at >= sessions.TOUCH_EVERY:
            return None
        user = Identity(id=row.user_id, email=row.email, name=row.name, role=row.role)
        asked = WerkzeugRequest(environ)
        asked.trusted_hosts = trusted
        url = forward_auth.original_url(asked, self.app.config)
        decision = access.decide(user, url, self.app.extensions["access_policy"])
        if not decision.allowed:
            return None
        return "200 OK", list(forward_auth.identity_headers(user).items())
