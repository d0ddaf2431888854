"""The client's home after sign-in: the firm's apps they may open, their devices, settings."""

from flask import Blueprint, current_app, redirect, render_template, url_for
from flask_login import current_user, login_required

from forms import LogoutForm
from services.federation import access

bp = Blueprint("portal", __name__)

# Settings pages, shown on the home page when this build has them.
SETTINGS = (
    ("account.security", "How you get your sign-in codes"),
    ("passwords.change", "Change your password"),
    ("email_change.change", "Change your email address"),
)


@bp.route("/")
def index():
    return redirect(url_for("portal.home") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/portal")
@login_required
def home():
    settings = [(url_for(endpoint), words) for endpoint, words in SETTINGS
                if endpoint in current_app.view_functions]
    devices = url_for("devices.index") if "devices.index" in current_app.view_functions else None
    return render_template("portal/home.html", logout_form=LogoutForm(),
                           apps=access.apps_for(current_user), settings=settings,
                           devices=devices)
