"""Absolute addresses of this site, always from PORTAL_URL, never from the request's Host.

A link in an email, the WebOTP line of a text message, the OpenID Connect issuer and a
passkey's relying-party id all name the site clients know. Taking them from the request
would let anyone who can send a request with `Host: phish.example` put that name into a
message the real site sends.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from flask import current_app


def portal_url() -> str:
    """The configured public address without a trailing slash, e.g. https://portal.firm.co.uk."""
    return current_app.config["PORTAL_URL"].rstrip("/")


def portal_host() -> str:
    """The host name clients use (no port), e.g. portal.firm.co.uk."""
    return urlsplit(portal_url()).hostname or ""


DEFAULT_PORTS = {"http": 80, "https": 443}


def portal_origin() -> str:
    """Scheme, host and port of the public address, e.g. https://portal.firm.co.uk.

    Written as browsers write an origin (RFC 6454): lower case, no default port, no user
    name. A PORTAL_URL of https://Portal.Firm.co.uk:443 still matches what a browser sends
    in Origin and in a passkey's signed client data.
    """
    parts = urlsplit(portal_url())
    scheme, host = parts.scheme.lower(), parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    port = "" if parts.port in (None, DEFAULT_PORTS.get(scheme)) else f":{parts.port}"
    return f"{scheme}://{host}{port}"


def absolute_url(endpoint: str, **values: Any) -> str:
    """The full address of an endpoint under PORTAL_URL; works inside and outside requests."""
    parts = urlsplit(portal_url())
    adapter = current_app.url_map.bind(
        parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
