"""GET /auth/verify: the forward-auth endpoint the web server asks about every request.

nginx's auth_request wants 200 or 401/403 and throws the body away; Caddy's forward_auth and
Traefik's ForwardAuth (which send X-Forwarded-Method) pass a refusal on to the browser, so to
them the endpoint answers what the browser should see: a redirect to sign in, or a page.
"""

from __future__ import annotations

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
