"""Forward-auth: what /auth/verify needs to answer the web server cheaply and safely.

The web server asks about every request to a protected app, so this costs one indexed query
(the session row with its user) and writes only when the idle timeout's once-a-minute touch
is due (services/signin/sessions.py). Nothing here renders a template or changes the cookie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional
from urllib.parse import quote, urlsplit

from flask import Request
from sqlalchemy import bindparam, select, update

from extensions import db
from models import AuthSession, User
from services import clock
from services.signin import sessions


@dataclass(frozen=True)
class Identity:
    """Who a live session belongs to: what the headers and the access rules need, no more."""

    id: int
    email: str
    name: Optional[str]
    role: str
    is_authenticated: bool = True
    is_active: bool = True


_sessions, _users = AuthSession.__table__, User.__table__
# One row: the session's times and its user's identity. Core, not ORM objects: the web server
# asks on every request, and building two ORM objects cost more than the query itself.
LOOKUP = (
    select(_sessions.c.user_id, _sessions.c.created_at, _sessions.c.last_seen_at,
           _sessions.c.revoked_at, _users.c.email, _users.c.name, _users.c.role,
           _users.c.deactivated_at)
    .join(_users, _users.c.id == _sessions.c.user_id)
    .where(_sessions.c.token_hash == bindparam("token_hash"))
)


def live_user(token: Optional[str], user_id) -> Optional[Identity]:
    """The user of a live session (not revoked, idle or expired; account open), or None.

    The same rules as every page (services/signin/sessions.py), with the once-a-minute idle touch.
    """
    if not token or not isinstance(token, str) or not isinstance(user_id, str) \
            or not user_id.isdigit():
        return None
    token_hash = sessions.token_hash(token)
    row = db.session.connection().execute(LOOKUP, {"token_hash": token_hash}).first()
    if row is None or row.user_id != int(user_id) or row.deactivated_at is not None \
            or not sessions.is_live(row):
        return None
    if clock.now() - row.last_seen_at >= sessions.TOUCH_EVERY:
        db.session.execute(update(AuthSession).where(AuthSession.token_hash == token_hash)
                           .values(last_seen_at=clock.now()))
        db.session.commit()
    return Identity(id=row.user_id, email=row.email, name=row.name, role=row.role)


def original_url(request: Request, config) -> Optional[str]:
    """The address the browser asked the web server for, or None if it cannot be trusted.

    nginx names it in X-Original-URL; Caddy and Traefik in X-Forwarded-Proto, -Host and -Uri.
    A client can send those headers too, so they count only when PROXY_FIX_X_HOST says a
    proxy in front sets them; X-Forwarded-Proto and -Host have then already been applied by
    ProxyFix (app.py), and Flask's TRUSTED_HOSTS has refused any host not listed. Caddy and
    Traefik pass on a client's own X-Original-URL, so no header wins by being present: when
    both name an address they must name the same one, and X-Original-URL must name the host
    the web server routed on (X-Forwarded-Host), or the address is unknown.
    """
    if config.get("PROXY_FIX_X_HOST", 0) <= 0:
        return None
    named = request.headers.get("X-Original-URL", "").strip()
    uri = request.headers.get("X-Forwarded-Uri", "").strip()
    named_url = _named_url(request, named) if named else None
    forwarded_url = _forwarded_url(request, uri) if uri else None
    if named and uri:
        both_read = named_url is not None and forwarded_url is not None
        return named_url if both_read and _same_url(named_url, forwarded_url) else None
    return named_url or forwarded_url


def _named_url(request: Request, named: str) -> Optional[str]:
    """X-Original-URL if it is a printable http(s) address on the host asked about.

    A client choosing the host in X-Original-URL (its own Host header, or a header the web
    server passed on) could have another host's rules judge it.
    """
    if not _printable(named):
        return None
    try:
        parts, asked = urlsplit(named), urlsplit("//" + request.host)
        if parts.scheme not in ("http", "https") or not parts.netloc or not parts.hostname:
            return None
        same_host = _host_name(parts.hostname) == _host_name(asked.hostname or "")
    except ValueError:  # a malformed address or host (e.g. an unclosed "[")
        return None
    return named if same_host else None


def _forwarded_url(request: Request, uri: str) -> Optional[str]:
    """The address from X-Forwarded-Uri with the scheme and host ProxyFix has applied."""
    if not uri.startswith("/") or uri.startswith("//") or not _printable(uri):
        return None
    return f"{request.scheme}://{request.host}{uri}"


def _same_url(first: str, second: str) -> bool:
    """True if both name the same address (scheme and host in any case, the rest exactly)."""
    one, other = urlsplit(first), urlsplit(second)
    return (one.scheme.lower(), one.netloc.lower(), one.path, one.query) == \
        (other.scheme.lower(), other.netloc.lower(), other.path, other.query)


def _host_name(host: str) -> str:
    return host.lower().rstrip(".")


# The longest header gunicorn passes on (its limit_request_field_size): a longer address never
# reaches ClientGate, and nginx takes request lines of up to 8 KB (large_client_header_buffers).
LONGEST_ADDRESS = 8190


def _printable(text: str) -> bool:
    return len(text) <= LONGEST_ADDRESS and all(32 < ord(ch) < 127 for ch in text)


def identity_headers(user: Identity) -> dict[str, str]:
    """Remote-User (the id), Remote-Email, Remote-Name and Remote-Groups (the role)."""
    name = user.name or user.email
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
