"""The firm's look: a small generated stylesheet and the logo file (services/branding.py)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, request

from extensions import limiter

bp = Blueprint("branding", __name__)
limiter.exempt(bp)

# The look changes only when the operator restarts with new settings; the address carries a
# version, so a day's caching is safe.
CACHE = "public, max-age=86400"
# Asked without this server's version, or with another's: while several servers are restarted
# one by one with a new look, a page from a restarted one asks for the new version and may
# land on one that still has the old. It answers with what it has, but nobody may keep that
# under the new version's address (nor under the bare one emails use) for a day.
NOT_KEPT = "no-cache"


def _cache(brand) -> str:
    return CACHE if request.args.get("v") == brand.version else NOT_KEPT


@bp.route("/brand.css")
def stylesheet():
    brand = current_app.extensions["brand"]
    return Response(brand.stylesheet, mimetype="text/css", headers={"Cache-Control": _cache(brand)})


@bp.route("/brand/logo")
def logo():
    brand = current_app.extensions["brand"]
    if brand.logo_file is None:
        abort(404)
    return Response(brand.logo_file, mimetype=brand.logo_type, headers={
        "Cache-Control": _cache(brand),
        # An SVG is a document that could carry script: opened on its own, it runs none.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    })
