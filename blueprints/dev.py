"""The development outbox: messages that would have been sent, when no server is configured.

Registered only in development (DEV_OUTBOX), never in production; and even then it answers
only this machine. Development answers to "localhost", a name any browser can send, so
a development server reachable from elsewhere (`flask run --host 0.0.0.0`) would otherwise
show every sign-in code to whoever asked.
"""

from ipaddress import ip_address

from flask import Blueprint, abort, current_app, render_template, request

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def this_machine_only():
    try:
        local = ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        local = False
    if not local:
        abort(404)


@bp.route("/outbox")
def outbox():
    messages = list(current_app.extensions.get("dev_outbox", []))
    return render_template("dev/outbox.html", messages=messages)
