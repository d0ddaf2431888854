"""Health check for load balancers and monitoring."""

from flask import Blueprint
from sqlalchemy import text

from extensions import db

bp = Blueprint("health", __name__)


@bp.route("/healthz")
def healthz():
    """200 with {"status": "ok"} when the database answers, 503 when it does not."""
    try:
        db.session.execute(text("SELECT 1"))
    except Exception:  # any database failure means "not healthy", never a 500 page
        db.session.rollback()
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}
