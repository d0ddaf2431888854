"""Absolute addresses of this site, always from PORTAL_URL, never from the request's Host.

A link in an email, the WebOTP line of a text message, the OpenID Connect issuer and a
passkey's relying-party id all name the site clients know. Taking them from the request
would let anyone who can send a request with `Host: phish.example` put that name into a
message the real site sends.
"""

from __future__ import annotations

from typing import Any, Optional
from urllib.parse import urlsplit

from flask import current_app


def portal_url() -> str:
    """The configured public address without a trailing slash, e.g. https://portal.firm.co.uk."""
    return current_app.config["PORTAL_URL"].rstrip("/")


def portal_host() -> str:
    """The host name clients use (no port), e.g. portal.firm.co.uk."""
    return urlsplit(portal_url()).hostname or ""


DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> Optional[str]:
    """Scheme, host and port of an address, written as browsers write an origin (RFC 6454):
    lower case, no default port, no user name; None for an address that cannot be read."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:  # an unclosed IPv6 bracket, a port that is not one
        return None
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    return f"{scheme}://{host}" + ("" if port in (None, DEFAULT_PORTS.get(scheme)) else f":{port}")


def portal_origin() -> str:
    """The public address's origin, e.g. https://portal.firm.co.uk: a PORTAL_URL of
    https://Portal.Firm.co.uk:443 still matches what a browser sends in Origin and in a
    passkey's signed client data (config.check_portal_url has made sure it can be read)."""
    return origin_of(portal_url())


def absolute_url(endpoint: str, **values: Any) -> str:
    """The full address of an endpoint under PORTAL_URL; works inside and outside requests."""
    parts = urlsplit(portal_url())
    adapter = current_app.url_map.bind(
        parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
