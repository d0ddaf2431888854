"""The development outbox: messages that would have been sent, when no server is configured.

Registered only in development (DEV_OUTBOX), never in production.
"""

from flask import Blueprint, current_app, render_template

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.route("/outbox")
def outbox():
    messages = list(current_app.extensions.get("dev_outbox", []))
    return render_template("dev/outbox.html", messages=messages)
