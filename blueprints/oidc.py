"""OpenID Connect endpoints: thin routes over services/federation/oidc.py.

That module, with Authlib and joserfc, is imported by the first OpenID Connect request a
worker serves (`_provider`), not with the app: most workers of a firm that does not use
OpenID Connect never serve one, and each would hold 3.6 MB for it (tests/production/
test_imports.py). The sign-in pages' hook below needs only services/federation/apps.py.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Optional
from urllib.parse import parse_qs, urlencode, urlsplit

from flask import (
    Blueprint, current_app, flash, jsonify, redirect, render_template, request, session, url_for,
)
from flask_login import current_user, logout_user
from itsdangerous import BadSignature, URLSafeSerializer

from blueprints.safety import NEXT_LONGEST, no_store, safe_next
from extensions import csrf, db
from forms import LogoutForm
from models import OAuthClient, SignIn
from services import clock
from services.federation import apps
from services.signin import limits

if TYPE_CHECKING:
    from authlib.oauth2 import OAuth2Error

bp = Blueprint("oidc", __name__)

# How long the "you have just signed in again" marker on a forced re-login stays good.
REAUTH_MARKER_SECONDS = 15 * 60


def _provider():
    """services/federation/oidc.py, bound to this app (imported with the first use)."""
    from services.federation import oidc

    oidc.bind(current_app._get_current_object())
    return oidc


@bp.after_request
def never_cache(response):
    return no_store(response)


# What a page on another site may call here, and how (CORS): the public documents from
# anywhere; the token and userinfo endpoints only from a single-page app's origin (a public
# client's redirect address). Never with credentials: tokens travel in the body and the
# Authorization header, not in cookies.
CORS_METHODS = {"oidc.discovery": "GET", "oidc.jwks_document": "GET",
                "oidc.token": "POST", "oidc.userinfo": "GET, POST"}
PUBLIC_DOCUMENTS = ("oidc.discovery", "oidc.jwks_document")


@bp.after_request
def let_browser_apps_read(response):
    """CORS headers on the answers (and preflights, Flask's automatic OPTIONS) of CORS_METHODS."""
    methods = CORS_METHODS.get(request.endpoint)
    if methods is None:
        return response
    if request.endpoint in PUBLIC_DOCUMENTS:
        response.headers["Access-Control-Allow-Origin"] = "*"
    else:
        response.vary.add("Origin")
        origin = request.headers.get("Origin")
        if not origin or not _provider().is_browser_app_origin(origin):
            return response
        response.headers["Access-Control-Allow-Origin"] = origin
    if request.method == "OPTIONS":
        response.headers["Access-Control-Allow-Methods"] = methods
        response.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
        response.headers["Access-Control-Max-Age"] = "600"
    return response


@bp.after_app_request
def let_the_code_form_return_to_the_app(response):
    """Sign-in pages started by an app may send their form on to that app (CSP form-action)."""
    if request.blueprint != "auth" or "Content-Security-Policy" not in response.headers \
            or response.mimetype != "text/html" or 300 <= response.status_code < 400 \
            or response.status_code >= 500:
        # No form shown: JSON (the code page's status), a redirect, or our fault's page (one
        # saying the database is away must not ask the database again). A form refused with
        # a 4xx (a wrong code) is shown again, and may still go on to the app.
        return response
    # The password page itself may finish the sign-in (a trusted device), so its `next` counts.
    # Only a `next` the sign-in itself would follow (a raw "http://[" is not an address).
    origin = apps.app_origin_for(safe_next(request.args.get("next")))
    sign_in_id = session.get("signin_id")
    if origin is None and isinstance(sign_in_id, int):
        sign_in = db.session.get(SignIn, sign_in_id)
        origin = apps.app_origin_for(sign_in.next_url if sign_in else None)
    if origin:
        policy = response.headers["Content-Security-Policy"]
        response.headers["Content-Security-Policy"] = policy.replace(
            "form-action 'self'", f"form-action 'self' {origin}")
    return response


@bp.route("/.well-known/openid-configuration")
def discovery():
    oidc = _provider()
    return jsonify(oidc.discovery())


@bp.route("/oauth/jwks")
def jwks_document():
    oidc = _provider()
    response = jsonify(oidc.jwks())
    db.session.commit()
    return response


def _parameters():
    """The authorization request's parameters: a GET's query or a POST's form, as
    oidc.AuthorizationParameters reads them for Authlib."""
    return request.form if request.method == "POST" else request.args


def _marker_signer() -> URLSafeSerializer:
    return URLSafeSerializer(current_app.config["SECRET_KEY"], salt="oidc-reauth")


def _marker_is_current(marker: Optional[str]) -> bool:
    """A re-sign-in marker we made in the last REAUTH_MARKER_SECONDS."""
    if not marker:
        return False
    try:
        asked_at = float(_marker_signer().loads(marker)[0])
    except (BadSignature, TypeError, ValueError, IndexError, KeyError):
        return False
    return 0 <= clock.now().timestamp() - asked_at <= REAUTH_MARKER_SECONDS


def wants_fresh_sign_in(next_url: Optional[str]) -> bool:
    """True when `next` is an app's authorization request that asked for a fresh sign-in
    (prompt=login, max_age): the sign-in page then asks a signed-in browser again instead
    of sending it straight on."""
    if not next_url:
        return False
    try:
        parts = urlsplit(next_url)
    except ValueError:
        return False
    return parts.path == url_for("oidc.authorize") and \
        _marker_is_current((parse_qs(parts.query).get("cg_reauth") or [None])[0])


def _fresh_login_done(login) -> bool:
    """True once for a request back from the sign-in we sent it to: the browser's session
    must come from a sign-in started for this very marker (its `next` holds it), so a
    marker picked up elsewhere, or kept from an earlier round, proves nothing."""
    marker = _parameters().get("cg_reauth")
    if login is None or not _marker_is_current(marker) \
            or session.get("oidc_reauth_used") == marker:
        return False
    sign_in = db.session.get(SignIn, login.sign_in_id) if login.sign_in_id else None
    if sign_in is None or f"cg_reauth={marker}" not in (sign_in.next_url or ""):
        return False
    session["oidc_reauth_used"] = marker  # single use: a reload must sign in again
    return True


def _subject_carried() -> Optional[str]:
    """The `sub` an app's id_token_hint named, carried through the sign-in in the marker."""
    marker = _parameters().get("cg_reauth")
    if not _marker_is_current(marker):
        return None
    carried = _marker_signer().loads(marker)
    return carried[2] if len(carried) > 2 and isinstance(carried[2], str) else None


def _to_login(client: OAuthClient, again: bool, expected: Optional[str]):
    """Send the browser through ClientGate's own sign-in, then back to this request (as a
    GET, whichever way it came).

    `again` (prompt=login, max_age): the session this browser has stays until the new
    sign-in replaces it (blueprints/auth.py ends it then), so a link alone signs nobody out.
    `expected`: the `sub` the app's id_token_hint named. The hint itself (some 900
    characters) could never come back through the sign-in (NEXT_LONGEST), so the
    marker carries the one thing it says.
    """
    args = _parameters().to_dict(flat=False)
    args.pop("id_token_hint", None)
    if again:
        flash(f"For your safety, {client.name} asks you to sign in again before it opens.",
              "info")
    # The sign-in about to happen is fresh: on the way back prompt=login and max_age are met.
    args["cg_reauth"] = [_marker_signer().dumps([clock.now().timestamp(),
                                                 secrets.token_urlsafe(8), expected])]
    back = url_for("oidc.authorize") + "?" + urlencode(args, doseq=True)
    if len(back) > NEXT_LONGEST:
        # It could not come back after the sign-in (safe_next), and the client would land on
        # the portal with the app's sign-in silently lost: say so instead.
        return _refused("This app's sign-in did not work",
                        "The app sent a sign-in request too long for this portal to carry "
                        "through the sign-in. Please tell the firm.", 400)
    return redirect(url_for("auth.login", next=back))


def _refused(title: str, message: str, status: int = 400, **extra):
    return render_template("oidc/refused.html", title=title, message=message, **extra), status


@bp.route("/oauth/authorize", methods=["GET", "POST"])
@csrf.exempt
@limits.oauth_authorizations
def authorize():
    """The authorization endpoint, by GET or POST (OIDC Core 3.1.2.1). A POST comes from the
    app's page on another site, so it carries no CSRF token of ours: it goes through the same
    checks as a GET, and (SameSite=Lax) without the session cookie, so a signed-in browser
    is sent through the sign-in page, which sends it straight back here as a GET."""
    oidc = _provider()
    user = current_user if current_user.is_authenticated else None
    try:
        grant = oidc.validate_authorization(user)
    except oidc.OAuth2Error as error:
        if error.redirect_uri:
            return oidc.error_redirect(error)
        return _bad_request(error)
    client = grant.client.row
    login = oidc.current_login()
    started = login.created_at if login else None
    stale = oidc.login_is_stale(grant, started)  # max_age was checked with the request
    fresh = _fresh_login_done(login)
    # The app named another person (id_token_hint): they must sign in here first.
    expected = oidc.subject_hinted(grant) or _subject_carried()
    someone_else = user is not None and oidc.names_someone_else(grant, user, expected)
    if user is None or (not fresh and (grant.prompt == "login" or stale or someone_else)):
        if oidc.shows_no_page(grant):
            return oidc.error_redirect(oidc.login_required(grant))
        oidc.note_app_sign_in(client, user)
        return _to_login(client, again=user is not None, expected=expected)
    if someone_else:  # signed in again just now, and still not the person the app named
        return oidc.error_redirect(oidc.login_required(grant))
    decision = oidc.access_decision(user, client)
    if not decision.allowed:
        oidc.note_refusal(client, user, decision.reason)
        if oidc.shows_no_page(grant):
            return oidc.error_redirect(oidc.access_denied(grant))
        return _refused("You cannot open this app",
                        f"You are signed in, but {client.name} is not open to your account. "
                        f"{decision.reason} If you think you should have access, contact the "
                        "firm.", 403, logout_form=LogoutForm())
    return oidc.issue_code(grant, user)


def _bad_request(error: OAuth2Error):
    """No redirect back to an address we cannot trust: say what is wrong, on our own page."""
    oidc = _provider()
    client = apps.find_client(_parameters().get("client_id"))
    oidc.note_bad_request(client, error, _parameters().get("redirect_uri"))
    if client is None:
        message = ("The app that sent you here is not registered with this portal, so it "
                   "cannot use it to sign you in. Please tell the firm.")
    elif "redirect" in (error.description or "").lower():
        message = (f"{client.name} asked to send you back to an address it has not registered "
                   "with this portal, so for your safety we stopped here. Please tell the firm.")
    else:
        message = (f"{client.name} sent a sign-in request this portal cannot accept "
                   f"({error.description or error.error}). Please tell the firm.")
    return _refused("This app's sign-in did not work", message, 400)


@bp.route("/oauth/token", methods=["POST"])
@csrf.exempt
@limits.oauth_failures
def token():
    oidc = _provider()
    return oidc.token_response()


@bp.route("/oauth/userinfo", methods=["GET", "POST"])
@csrf.exempt
@limits.oauth_failures
def userinfo():
    oidc = _provider()
    return oidc.userinfo_response()


@bp.route("/oauth/logout", methods=["GET", "POST"])
@csrf.exempt
def end_session():
    """RP-initiated logout: at once with our id_token_hint for the user signed in here,
    otherwise after asking."""
    oidc = _provider()
    try:
        end = oidc.validate_end_session()
    except oidc.OAuth2Error as error:
        return _refused("This sign-out request did not work",
                        "The app's sign-out request could not be checked "
                        f"({error.description or error.error}). You can still sign out here.",
                        400, logout_form=LogoutForm() if current_user.is_authenticated else None)
    # A hint naming someone else, or none: ask, and send nobody anywhere (RP-Initiated
    # Logout 1.0, 2); the confirm page's button is the CSRF-protected POST /logout.
    if end.needs_confirmation or not oidc.may_end_at_once(end):
        if not current_user.is_authenticated:
            return render_template("oidc/signed_out.html", client=end.client and end.client.row)
        return render_template("oidc/confirm_logout.html", form=LogoutForm(),
                               client=end.client and end.client.row)
    response = oidc.finish_end_session(end)
    logout_user()
    session.clear()
    return response or render_template("oidc/signed_out.html",
                                       client=end.client and end.client.row)
