"""Forward-auth: what /auth/verify needs to answer the web server cheaply and safely.

The web server asks about every request to a protected app, so this costs one indexed query
(the session row with its user) and writes only when the idle timeout's once-a-minute touch
is due (services/sessions.py). Nothing here renders a template or changes the cookie.
"""

from __future__ import annotations

from typing import Optional
from urllib.parse import quote, urlsplit

from flask import Request
from sqlalchemy import select

from extensions import db
from models import AuthSession, User
from services import sessions


def live_user(token: Optional[str], user_id) -> Optional[User]:
    """The user of a live session (not revoked, idle or expired; account open), or None."""
    if not isinstance(user_id, str):
        return None
    user = sessions.user_for_token(token, user_id)
    if user is None or not user.is_active:
        return None
    return user


def original_url(request: Request, config) -> Optional[str]:
    """The address the browser asked the web server for, or None if it cannot be trusted.

    nginx names it in X-Original-URL; Caddy and Traefik in X-Forwarded-Proto, -Host and -Uri.
    A client can send those headers too, so they count only when PROXY_FIX_X_HOST says a
    proxy in front sets them (and the guide's configurations overwrite what clients send);
    X-Forwarded-Proto and -Host have then already been applied by ProxyFix (app.py), and
    Flask's TRUSTED_HOSTS has refused any host not listed.
    """
    if config.get("PROXY_FIX_X_HOST", 0) <= 0:
        return None
    named = request.headers.get("X-Original-URL", "").strip()
    if named:
        try:
            parts = urlsplit(named)
        except ValueError:
            return None
        if parts.scheme in ("http", "https") and parts.netloc and _printable(named):
            return named
        return None
    uri = request.headers.get("X-Forwarded-Uri", "").strip()
    if not uri.startswith("/") or uri.startswith("//") or not _printable(uri):
        return None
    return f"{request.scheme}://{request.host}{uri}"


def _printable(text: str) -> bool:
    return len(text) <= 4096 and all(32 < ord(ch) < 127 for ch in text)


def identity_headers(user: User) -> dict[str, str]:
    """Remote-User (the id), Remote-Email, Remote-Name and Remote-Groups (the role)."""
    name = getattr(user, "name", None) or user.email
    return {
        "Remote-User": str(user.id),
        "Remote-Email": user.email,
        "Remote-Name": header_text(name),
        "Remote-Groups": user.role,
    }


def header_text(value: str) -> str:
    """A header-safe form of a name: ASCII as it is, anything else as RFC 2047 UTF-8."""
    value = " ".join(value.split())  # no CR, LF or tab can split the header
    if all(32 <= ord(ch) < 127 for ch in value):
        return value
    return "=?utf-8?q?" + quote(value.encode(), safe="").replace("%", "=") + "?="
