"""GET /auth/verify: the forward-auth endpoint the web server asks about every request.

nginx's auth_request wants 200 or 401/403 and throws the body away; Caddy's forward_auth and
Traefik's ForwardAuth (which send X-Forwarded-Method) pass a refusal on to the browser, so to
them the endpoint answers what the browser should see: a redirect to sign in, or a page; to
the app's own script (fetch, XMLHttpRequest) with no session, a 401 in JSON.
"""

from __future__ import annotations

import logging
from typing import Optional
from urllib.parse import urlsplit

from flask import (Blueprint, Response, current_app, jsonify, redirect, render_template, request,
                   session)
from werkzeug.wrappers import Request as WerkzeugRequest

from blueprints.fast_path import FastPath
from blueprints.safety import safe_next
from extensions import csrf, limiter
from services import branding, clock
from services.federation import access, forward_auth
from services.signin import sessions
from services.urls import absolute_url, portal_origin

log = logging.getLogger("clientgate.forward_auth")

bp = Blueprint("forward_auth", __name__)
# The web server asks from its own address on every request: a per-address limit would shut
# everyone out at once, and a GET here changes nothing a CSRF token protects.
limiter.exempt(bp)
csrf.exempt(bp)


@bp.route("/auth/verify", methods=["GET", "HEAD"])
# Caddy passes a browser's WebSocket handshake (Upgrade: websocket) on in the question, and
# Werkzeug routes such a request only to a rule marked for WebSockets: without this one, every
# handshake to a protected app was a 400.
@bp.route("/auth/verify", methods=["GET"], websocket=True, endpoint="verify_websocket")
def verify():
    """200 with the Remote-* headers for a live session allowed here; else 401, 302 or 403."""
    config = current_app.config
    url = forward_auth.original_url(request, config)
    for_browser = "X-Forwarded-Method" in request.headers
    user = forward_auth.live_user(session.get("sid"), session.get("_user_id"))
    if user is None:
        if not for_browser:
            return Response(status=401)
        if from_a_script(request):
            return signed_out_for_script()
        target = safe_next(url)
        login = absolute_url("auth.login", next=target) if target else absolute_url("auth.login")
        return redirect(login, 302)
    decision = access.decide(user, url)
    if decision.allowed:
        return Response(status=200, headers=forward_auth.identity_headers(user))
    if set_up_wrong(decision):
        log.warning("/auth/verify refused %s: %s This is the web server's or ClientGate's "
                    "setup, not the client's doing (see the guide, 'In front of the firm's "
                    "apps').", _page_of(url), decision.reason)
    if not for_browser:
        return Response(status=403)
    return forbidden_page(user, url, decision)


def from_a_script(asked) -> bool:
    """A fetch(), an XMLHttpRequest or a WebSocket of the app's page, not a page the browser
    opens. Browsers say so in Sec-Fetch-Mode; older ones, through jQuery and the like, in
    X-Requested-With."""
    mode = asked.headers.get("Sec-Fetch-Mode")
    if mode is not None:
        return mode != "navigate"
    return asked.headers.get("X-Requested-With", "").lower() == "xmlhttprequest"


def signed_out_for_script() -> Response:
    """401 with what to do in JSON. A redirect to the sign-in page would be followed by the
    browser unseen, and the app's script would get the page's HTML with a 200."""
    response = jsonify(error="not_signed_in",
                       message="Your sign-in has ended. Sign in again to go on.",
                       sign_in=absolute_url("auth.login"))
    response.status_code = 401
    response.headers["Cache-Control"] = "no-store"
    return response


def set_up_wrong(decision: access.Decision) -> bool:
    """A refusal no access rule made: the web server did not say which page was asked for, or
    asked about an address this portal does not guard. The operator's to fix, not the
    client's: the page says so in plain words, and the log says what."""
    return not decision.allowed and decision.rule is None


def _page_of(url: Optional[str]) -> str:
    """The address asked about, for the log: without its query, which may hold a token."""
    if url is None:
        return "a request whose address the web server did not give"
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def forbidden_page(user, url, decision):
    """The 403 page in ClientGate's words, shown on the protected app's own address."""
    return app_page("federation/forbidden.html", 403, user=user,
                    url=url if safe_next(url) else None, reason=decision.reason,
                    set_up_wrong=set_up_wrong(decision))


def database_away(message: str) -> Response:
    """/auth/verify's 503 while the database cannot be reached (app.database_away_page): nobody
    is let in. Caddy and Traefik show the browser what this says, so it is a page on the app's
    address (or JSON for the app's own script); nginx's guide file asks again for the same."""
    if "X-Forwarded-Method" not in request.headers:
        response = Response(status=503)
    elif from_a_script(request):
        response = jsonify(error="try_again", message=message)
        response.status_code = 503
    else:
        url = forward_auth.original_url(request, current_app.config)
        response = app_page("federation/try_again.html", 503, message=message,
                            url=url if safe_next(url) else None)
    response.headers["Cache-Control"] = "no-store"
    return response


def app_page(template: str, status: int, **context) -> Response:
    """One of ClientGate's pages shown on the protected app's address: its stylesheet, logo and
    links come from the portal, so the policy names the portal's origin beside 'self'."""
    origin = portal_origin()
    response = Response(render_template(
        template, portal_home=absolute_url("portal.home"), asset_root=origin, **context),
        status=status)
    logo = branding.logo_origin(current_app.extensions["brand"]) or ""
    response.headers["Content-Security-Policy"] = (
        f"default-src 'none'; style-src 'self' {origin}; img-src 'self' {origin} {logo} data:; "
        f"connect-src 'self' {origin}; "
        "form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


class VerifyFastPath(FastPath):
    """/auth/verify's two plain cases, answered in front of Flask (blueprints/fast_path.py).

    No session cookie → 401; a live session that the rules let in → 200 with the Remote-*
    headers. Anything else — a redirect or page for Caddy or Traefik, a bad signature, a
    session ended, idle or due its once-a-minute touch, a closed account, a refusal, an
    untrusted Host — goes on to the route above.
    """

    PATH = "/auth/verify"
    METHODS = ("GET", "HEAD")
    HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff")]

    def answer(self, environ):
        if "HTTP_X_FORWARDED_METHOD" in environ:
            return None  # Caddy or Traefik: a refusal is a redirect or a page, the route's
        data = self.session(environ)
        if data is None:
            return "401 UNAUTHORIZED", self.HEADERS, b""
        token, user_id = data.get("sid"), data.get("_user_id")
        if not isinstance(token, str) or not isinstance(user_id, str) or not user_id.isdigit():
            return None
        with self.connect() as connection:
            row = connection.execute(
                forward_auth.LOOKUP, {"token_hash": sessions.token_hash(token)}).first()
        if row is None or row.user_id != int(user_id) or row.deactivated_at is not None \
                or not sessions.is_live(row, self.app.config) \
                or clock.now() - row.last_seen_at >= sessions.TOUCH_EVERY:
            return None  # the once-a-minute touch is a write: the route's
        user = forward_auth.Identity(id=row.user_id, email=row.email, name=row.name,
                                     role=row.role)
        asked = WerkzeugRequest(environ)
        asked.trusted_hosts = self.app.config.get("TRUSTED_HOSTS")
        url = forward_auth.original_url(asked, self.app.config)
        decision = access.decide(user, url, self.app.extensions["access_policy"])
        if not decision.allowed:
            return None
        return "200 OK", [*self.HEADERS, *forward_auth.identity_headers(user).items()], b""
