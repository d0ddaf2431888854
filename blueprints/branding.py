"""The firm's look: a small generated stylesheet and the logo file (services/branding.py)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from extensions import limiter

bp = Blueprint("branding", __name__)
limiter.exempt(bp)

# The look changes only when the operator restarts with new settings; the address carries a
# version, so a day's caching is safe.
CACHE = "public, max-age=86400"


@bp.route("/brand.css")
def stylesheet():
    brand = current_app.extensions["brand"]
    return Response(brand.stylesheet, mimetype="text/css", headers={"Cache-Control": CACHE})


@bp.route("/brand/logo")
def logo():
    brand = current_app.extensions["brand"]
    if brand.logo_file is None:
        abort(404)
    return Response(brand.logo_file, mimetype=brand.logo_type, headers={
        "Cache-Control": CACHE,
        # An SVG is a document that could carry script: opened on its own, it runs none.
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; sandbox",
    })
