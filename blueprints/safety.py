"""Small request helpers shared by the blueprints."""

from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

from flask import flash, redirect, request, session, url_for
from flask_login import current_user, logout_user
from werkzeug.routing import IntegerConverter

from extensions import db
from services import clock
from services.signin import limits, passwords, phone_proofs, sessions

# The largest row id: an INTEGER column holds 2**31 - 1 on PostgreSQL. A number from a request
# outside 1..MAX_ID names no row, and handed to the database it would be an error (SQLite's
# OverflowError past 2**63, PostgreSQL's "integer out of range" past 2**31): it is refused first.
MAX_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<int:...>` in routes: a row id from 1 to MAX_ID; anything else is a 404."""

    def __init__(self, map, fixed_digits: int = 0, min: Optional[int] = 1,
                 max: Optional[int] = MAX_ID, signed: bool = False) -> None:
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)


def id_arg(name: str) -> Optional[int]:
    """A row id from the query string (?name=123), or None when absent or out of range."""
    value = request.args.get(name, type=int)
    return value if value is not None and 1 <= value <= MAX_ID else None


# The longest `next` a sign-in carries (SignIn.next_url): room for an app's whole OpenID
# Connect request, whose `state` may hold the page the client asked for (oauth2-proxy's does),
# while the redirect to sign in, its address quoted once more, stays within the 4 KB of
# response headers nginx reads by default (proxy_buffer_size).
NEXT_LONGEST = 1024


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site or an address on a listed host, else None.

    Listed: PORTAL_URL's host and PROTECTED_HOSTS (services/federation/access.py), so that
    after sign-in a client goes back to the protected app they asked for, and nowhere else.
    """
    if not target or len(target) > NEXT_LONGEST:
        return None
    if "\\" in target or any(ord(ch) < 32 or ord(ch) == 127 for ch in target):
        return None
    try:
        parts = urlsplit(target)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return None
    if not parts.scheme and not parts.netloc:
        return target if target.startswith("/") and not target.startswith("//") else None
    return target if _listed_address(parts) else None


def _listed_address(parts) -> bool:
    from services.federation import access

    policy = access.policy()
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return False
    if policy.portal_scheme == "https" and parts.scheme != "https":
        return False  # never from HTTPS down to plain HTTP
    return access.is_listed_host(parts.hostname)


CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'; object-src 'none'"
)
# Beside the Content-Security-Policy on every response (app.py's security_headers).
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "same-origin"),
    ("X-Frame-Options", "DENY"),
    ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
)
# Only on HTTPS: a browser that reached the portal over HTTPS keeps to it for a year.
HSTS = ("Strict-Transport-Security", "max-age=31536000; includeSubDomains")
NO_STORE = (
    ("Cache-Control", "no-store, no-cache, must-revalidate, max-age=0"),
    ("Pragma", "no-cache"),
    ("Expires", "0"),
)


def no_store(response):
    """Never keep this page: Back must ask the server again, and bfcache must not restore it."""
    for name, value in NO_STORE:
        response.headers[name] = value
    return response


def token_in_address(response):
    """A page reached by a one-time link (reset, invitation, email proof) has the token in its
    address: the browser then sends only this site's origin as Referer, never the address, so
    the token reaches no log through this site's own stylesheet or the page's form. (Origin,
    not nothing: Flask-WTF checks the Referer's origin on HTTPS.)"""
    if "token" in (request.view_args or {}):
        response.headers["Referrer-Policy"] = "strict-origin"
    return response


def current_password_right(user, typed: str) -> bool:
    """The password a signed-in client typed to make a change. Never checked while the
    account is locked: a session opened by a passkey or a trusted device during the lock
    must not get the guesses that /login refuses."""
    if user.is_locked(clock.now()):
        return False
    return passwords.verify_password(user, typed)


def count_wrong_password(user) -> int:
    """Count a wrong current password typed by a signed-in client; return the tries left.

    At none left the browser is signed out (a flash says why): someone at an unlocked
    device must not get to guess the password that guards the account's settings. The same
    when the account is locked (by these failures across sessions, or at /login): the
    password is not checked, nothing is counted, and the browser is signed out.
    """
    if user.is_locked(clock.now()):
        sessions.revoke(session.get("sid"))
        db.session.commit()
        logout_user()
        session.clear()
        flash(limits.lock_refusal(user).message, "warning")
        return 0
    failures = phone_proofs.wrong_password(user, session.get("sid"))
    db.session.commit()
    if user.is_locked(clock.now()):
        return count_wrong_password(user)
    left = phone_proofs.MAX_WRONG_PASSWORDS - failures
    if left <= 0:
        logout_user()
        session.clear()
        flash("That was too many wrong passwords, so we have signed you out to keep your "
              "account safe. Please sign in again.", "warning")
    return left


def password_again(password: Optional[str], back_to: str, field: str):
    """Unless the sign-in was recent, the password again before a change to how the account
    signs in; None to go ahead, else the response that goes back to `back_to` saying why.

    Why is shown beside the password box with the id `field` (the password_again macro in
    templates/_macros.html), where the client is looking."""
    if phone_proofs.recently_signed_in(session.get("sid")):
        return None
    user = current_user._get_current_object()
    if isinstance(password, str) and password and len(password) <= 1024 \
            and current_password_right(user, password):
        return None
    if not password:
        flash("Enter your password to make this change: you signed in more than 10 minutes "
              "ago.", f"password-again:{field}")
        return redirect(back_to)
    left = count_wrong_password(user)
    if left <= 0:
        return redirect(url_for("auth.login"))
    flash(f"That password is not right. Nothing has changed. {tries_left(left)}",
          f"password-again:{field}")
    return redirect(back_to)


def tries_left(left: int) -> str:
    return f"You have {left} {'try' if left == 1 else 'tries'} left before we sign you out."


def wrong_current_password(field, page):
    """A form's current-password field was wrong: say so on the page, or sign out at the end."""
    left = count_wrong_password(current_user._get_current_object())
    if left <= 0:
        return redirect(url_for("auth.login"))
    field.errors.append(f"That password is not right. {tries_left(left)}")
    return page()
