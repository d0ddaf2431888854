"""The apps registered with the OpenID Connect provider, as the sign-in pages see them.

Which app a sign-in will return to (its `next` is our authorize URL): the code page names
that app's origin in its CSP, and the support console names the app. None of it needs Authlib,
so the sign-in pages and the support console do not load the provider (services/federation/
oidc.py, with Authlib and joserfc: 3.6 MB) into a worker that never serves OpenID Connect.
"""

from __future__ import annotations

import re
from typing import Optional
from urllib.parse import parse_qs, urlsplit

from sqlalchemy import select

from extensions import db
from models import OAuthClient

# The shapes oidc.new_client_id has made: "cg-" and 24 URL-safe characters, and before that
# the 24 characters alone. Anything else (a NUL, which PostgreSQL refuses in a query, a space,
# 10 kB) cannot name an app, so it never reaches the database.
CLIENT_ID_SHAPE = re.compile(r"(?:cg-)?[A-Za-z0-9_-]{24}")


def is_client_id(value: Optional[str]) -> bool:
    """True when `value` has the shape of a client_id this portal gives out."""
    return isinstance(value, str) and CLIENT_ID_SHAPE.fullmatch(value) is not None


def find_client(client_id: Optional[str]) -> Optional[OAuthClient]:
    """The registered app with this client_id, if any."""
    if not is_client_id(client_id):
        return None
    return db.session.scalar(select(OAuthClient).where(OAuthClient.client_id == client_id))


def _client_id_in(next_url: Optional[str]) -> Optional[str]:
    """The client_id of an authorize URL kept as a sign-in's `next`, else None."""
    if not next_url:
        return None
    try:
        parts = urlsplit(next_url)
    except ValueError:  # "http://[": not an address at all
        return None
    if parts.path != "/oauth/authorize":
        return None
    client_id = (parse_qs(parts.query).get("client_id") or [None])[0]
    return client_id if is_client_id(client_id) else None


def apps_named_in(next_urls) -> dict[str, str]:
    """Sign-ins' `next` addresses that an app started -> the app's name (one query)."""
    wanted = {url: _client_id_in(url) for url in set(next_urls) if url}
    wanted = {url: cid for url, cid in wanted.items() if cid}
    if not wanted:
        return {}
    names = dict(db.session.execute(select(OAuthClient.client_id, OAuthClient.name).where(
        OAuthClient.client_id.in_(set(wanted.values())))).all())
    return {url: names.get(cid, "An app no longer registered") for url, cid in wanted.items()}


def app_origin_for(next_url: Optional[str]) -> Optional[str]:
    """The origin of the app a sign-in will return to, when its `next` is our authorize URL.

    The code page's form, once the code is right, redirects through /oauth/authorize to the
    app; browsers hold every step of that chain to the page's CSP `form-action`, so that one
    registered origin must be named there (and no other).
    """
    client_id = _client_id_in(next_url)
    client = find_client(client_id) if client_id else None
    if client is None:
        return None
    redirect_uri = (parse_qs(urlsplit(next_url).query).get("redirect_uri") or [None])[0]
    if redirect_uri not in (client.redirect_uris or []):
        return None
    target = urlsplit(redirect_uri)  # registered, so checked by oidc._check_uri
    return f"{target.scheme}://{target.netloc}"
