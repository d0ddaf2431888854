"""/account/devices: where the client is signed in now, what else lets someone in (devices that
skip the code, passkeys), recent sign-ins, and sign out elsewhere."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required

from blueprints.safety import id_arg, no_store, password_again
from extensions import db
from forms import RemoveForm, SignOutElsewhereForm
from services.signin import limits, phone_proofs, sessions
from services.accounts import devices
from services.authenticators import passkeys, trusted_devices

bp = Blueprint("devices", __name__)


@bp.after_request
def never_cache(response):
    return no_store(response)


@bp.route("/account/devices")
@login_required
def index():
    user = current_user._get_current_object()
    return render_template(
        "account/devices.html", user=user,
        devices=devices.signed_in_devices(user, session.get("sid")),
        recent=devices.recent_sign_ins(user), form=SignOutElsewhereForm(),
        trusted_devices=trusted_devices.devices_of(user), remove_form=RemoveForm(),
        email_change=devices.pending_email_change(user), passkeys=passkeys.passkeys_of(user),
        # Removing a passkey asks for the password after a while, as on /account/security:
        # `removing` is the passkey whose row now asks for it.
        needs_password=not phone_proofs.recently_signed_in(session.get("sid")),
        removing=id_arg("remove"),
        # Signing out asks for it too (ASVS 7.5.2): the device whose button now asks, or all.
        signing_out=("others" if request.args.get("sign_out") == "others"
                     else id_arg("sign_out")),
    )


@bp.route("/account/devices/sign-out-others", methods=["POST"])
@limits.account_changes
@login_required
def sign_out_others():
    form = SignOutElsewhereForm()
    if not form.validate_on_submit():
        flash("That page had been open too long, so nothing was done. Please try again.",
              "warning")
        return redirect(url_for("devices.index"))
    refused = password_again(
        request.form.get("password"),
        url_for("devices.index", sign_out="others"),
        field="sign-out-others-password")
    if refused is not None:
        return refused
    ended = devices.sign_out_everywhere_else(
        current_user._get_current_object(), session.get("sid"),
        request.cookies.get(trusted_devices.cookie_name()))
    fresh = sessions.rotate(session.get("sid"))  # a copy of the cookie dies too
    db.session.commit()
    if fresh:
        session["sid"] = fresh
    flash(_signed_out_words(ended), "success")
    return redirect(url_for("devices.index"))


@bp.route("/account/devices/<int:session_id>/sign-out", methods=["POST"])
@limits.account_changes
@login_required
def sign_out_device(session_id: int):
    """Sign one other device out: the one the client does not recognise, or left signed in."""
    if not SignOutElsewhereForm().validate_on_submit():
        flash("That page had been open too long, so nothing was done. Please try again.",
              "warning")
        return redirect(url_for("devices.index", _anchor="signed-in"))
    refused = password_again(
        request.form.get("password"),
        url_for("devices.index", sign_out=session_id),
        field=f"sign-out-password-{session_id}")
    if refused is not None:
        return refused
    if devices.sign_out_device(current_user._get_current_object(), session_id,
                               session.get("sid")):
        db.session.commit()
        flash("That device is now signed out. If you do not recognise it, also change your "
              "password, and remove it from the devices that skip the code if it is there.",
              "success")
    else:
        flash("That device was already signed out. Nothing has changed.", "info")
    return redirect(url_for("devices.index", _anchor="signed-in"))


def _signed_out_words(ended: devices.SignedOut) -> str:
    if not ended.anything:
        return "You were not signed in anywhere else. Nothing has changed."
    words = ["You are now signed out everywhere except here."]
    if ended.email_change:
        words.append("We have also stopped the change of your sign-in email address that was "
                     "waiting: its link no longer works.")
    if ended.phone_proof:
        words.append("We have also stopped the check of a new mobile number that was waiting "
                     "for its code: your number has not changed.")
    return " ".join(words)
