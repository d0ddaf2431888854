"""The client's home after sign-in."""

from flask import Blueprint, redirect, render_template, url_for
from flask_login import current_user, login_required

from forms import LogoutForm

bp = Blueprint("portal", __name__)


@bp.route("/")
def index():
    return redirect(url_for("portal.home") if current_user.is_authenticated else url_for("auth.login"))


@bp.route("/portal")
@login_required
def home():
    return render_template("portal/home.html", logout_form=LogoutForm())
