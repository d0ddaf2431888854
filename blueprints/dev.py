"""The development outbox: messages that would have been sent, when no server is configured.

Registered only in development (DEV_OUTBOX), never in production; and even then it answers
only a request made on this machine, not one relayed by a proxy or tunnel running here.
Development answers to "localhost", a name any browser can send, so a development server
reachable from elsewhere (`flask run --host 0.0.0.0`, a tunnel) would otherwise show every
sign-in code to whoever asked.
"""

from flask import Blueprint, abort, current_app, render_template

from blueprints.health import from_this_machine

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def this_machine_only():
    # Not only a loopback address: a tunnel or proxy on this machine (ngrok or cloudflared,
    # often started to let Vonage's receipts reach a development server) connects from
    # loopback too, for whoever is at the other end.
    if not from_this_machine():
        abort(404)


@bp.route("/outbox")
def outbox():
    messages = list(current_app.extensions.get("dev_outbox", []))
    return render_template("dev/outbox.html", messages=messages)
