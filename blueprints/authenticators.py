"""Passkeys and trusted devices: the passkey JSON endpoints that static/js talks to, and
"forget this device". The authenticator app's setup lives on /account/security (account.py).

Every POST carries a CSRF token (a form field, sent by the scripts as form data, not JSON).
Every answer to a script is JSON with either `options`, `redirect`, or an `error` in words a
client understands; without JavaScript the same buttons lead to a page saying so.
"""

from __future__ import annotations

from typing import Optional

from flask import (
    Blueprint, current_app, flash, jsonify, redirect, request, session, url_for,
)
from flask_login import current_user, login_required, login_user

from blueprints import kept_forms
from blueprints.safety import (
    count_wrong_password, current_password_right, no_store, password_again, safe_next,
    tries_left,
)
from extensions import db
from forms import PasskeyAddForm, PasskeyAnswerForm, PasskeySignInForm, RemoveForm
from models import User
from services import audit, contact
from services.signin import codes, limits, phone_proofs, sessions
from services.authenticators import passkeys, sign_ins, trusted_devices
from services.support.timeline import device_words, sign_in_method

bp = Blueprint("authenticators", __name__)

NO_SCRIPT = ("Passkeys need JavaScript, which is turned off or blocked in this browser. "
             "Sign in with your email and password instead.")
TRY_AGAIN = "That did not work. Please try again, or sign in with your email and password."


def sign_in_problem(problem: str) -> str:
    """Why a passkey did not sign in, in words; made when said, so that "contact us" says how
    when PORTAL_CONTACT is set."""
    return {
        "expired": "That took too long, so we stopped waiting for the passkey. Please try again.",
        "unknown": "We do not know that passkey. It may have been removed from your account. "
                   "Sign in with your email and password instead.",
        "invalid": TRY_AGAIN,
        "clone": "We could not accept that passkey, to keep your account safe. Please sign in "
                 "with your email and password, and if this happens again, "
                 f"{contact.contact_us()}.",
        "inactive": f"This account cannot sign in at the moment. Please {contact.contact_us()}.",
    }[problem]


ADD_PROBLEMS = {
    "expired": "That took too long. Please try adding the passkey again.",
    "invalid": "Your device did not make a passkey we could use. Please try again.",
    "duplicate": "That passkey is already on your account.",
    "too_many": f"You have {passkeys.MAX_PASSKEYS} passkeys, which is the most an account can "
                "have. Remove one you no longer use first.",
}


@bp.after_request
def never_cache(response):
    return no_store(response)


def _error(message: str, status: int = 400):
    return jsonify({"error": message}), status


# --- signing in with a passkey --------------------------------------------------------

@bp.route("/login/passkey", methods=["POST"])
def passkey_without_script():
    """The passkey button's own form, reached only when no script took it over."""
    PasskeySignInForm().validate_on_submit()
    flash(NO_SCRIPT, "warning")
    return redirect(url_for("auth.login"))


@bp.route("/login/passkey/options", methods=["POST"])
@limits.passkey_sign_ins
def passkey_sign_in_options():
    if not PasskeySignInForm().validate_on_submit():
        return _error("This page had been open too long. Please reload it and try again.")
    handle, options = passkeys.authentication_options()
    db.session.commit()
    session["passkey_sign_in"] = handle
    return _options(options)


@bp.route("/login/passkey/verify", methods=["POST"])
@limits.passkey_sign_ins
def passkey_sign_in():
    form = PasskeyAnswerForm()
    if not form.validate_on_submit():
        return _error(TRY_AGAIN)
    used = passkeys.finish_authentication(session.pop("passkey_sign_in", None),
                                          form.credential.data)
    if not used.ok:
        db.session.commit()  # the challenge is used up and the refusal recorded
        return _error(sign_in_problem(used.problem), 403 if used.problem != "invalid" else 400)
    user, passkey = used.user, used.passkey
    next_url = safe_next(request.args.get("next"))
    sign_in = sign_ins.record_codeless(user, sign_ins.PASSKEY, passkey.name, next_url=next_url)
    # NIST SP 800-63B: a passkey with user verification is a multi-factor cryptographic
    # authenticator; the audit says so, and the session's amr (RFC 8176) carries it on.
    audit.record("passkey_used", user_id=user.id, sign_in_id=sign_in.id, outcome="ok",
                 detail={"passkey_id": passkey.id, "name": passkey.name,
                         "authenticator": "multi-factor cryptographic",
                         "sign_count": passkey.sign_count})
    start_session(user, sign_in.id, passkeys.amr_for(passkey), next_url)
    return jsonify({"redirect": next_url or url_for("portal.home")})


def _options(options: str):
    """py_webauthn's options (already JSON) as the body of our answer."""
    return current_app.response_class('{"options": ' + options + "}",
                                      mimetype="application/json")


def start_session(user: User, sign_in_id: int, amr: list[str],
                  next_url: Optional[str] = None) -> None:
    """A fresh server-side session (new token, new cookie) for a sign-in that is complete;
    one this browser had is ended, not left to run out. What a form held when the old one
    ended goes on with it, for the page the client goes back to (kept_forms)."""
    kept = kept_forms.carry_over(user.id, next_url)
    sessions.revoke(session.get("sid"))
    session.clear()
    kept_forms.restore(kept)
    token = sessions.open_session(user, sign_in_id, amr=amr)
    login_user(user)
    session["sid"] = token
    audit.record("signed_in", user_id=user.id, sign_in_id=sign_in_id)
    db.session.commit()


# --- adding and removing passkeys -----------------------------------------------------

@bp.route("/account/passkeys", methods=["POST"])
@login_required
def passkey_add_without_script():
    """The add-a-passkey form, reached only when no script took it over."""
    flash("Adding a passkey needs JavaScript, which is turned off or blocked in this browser.",
          "warning")
    return redirect(url_for("account.security", _anchor="passkeys"))


@bp.route("/account/passkeys/options", methods=["POST"])
@limits.preference_changes
@login_required
def passkey_add_options():
    user = current_user._get_current_object()
    form = PasskeyAddForm()
    if not form.validate_on_submit():
        return _error(next(iter(form.errors.values()))[0] if form.errors else TRY_AGAIN, 422)
    if not passkeys.room_for_another(user):
        # Said now: given a challenge, the device would make and keep a passkey we then refuse.
        return _error(ADD_PROBLEMS["too_many"], 422)
    if not phone_proofs.recently_signed_in(session.get("sid")):
        if not form.password.data:
            return _error("Enter your password to add a passkey: you signed in more than "
                          "10 minutes ago.", 422)
        if not current_password_right(user, form.password.data):
            left = count_wrong_password(user)
            if left <= 0:
                return jsonify({"redirect": url_for("auth.login"),
                                "error": "Too many wrong passwords."}), 403
            return _error(f"That password is not right. {tries_left(left)}", 422)
    handle, options = passkeys.registration_options(user, form.name.data)
    db.session.commit()
    session["passkey_add"] = handle
    return _options(options)


@bp.route("/account/passkeys/verify", methods=["POST"])
@limits.preference_changes
@login_required
def passkey_add():
    user = current_user._get_current_object()
    form = PasskeyAnswerForm()
    if not form.validate_on_submit():
        return _error(ADD_PROBLEMS["invalid"])
    # The account held, then this session asked again: a new password, support giving the
    # account back or switching it off may have ended it since this request began, and what
    # it adds after that would outlive what they removed.
    codes.hold_account(user)
    if sessions.session_for_token(session.get("sid")) is None:
        db.session.commit()
        return jsonify({"redirect": url_for("auth.login"),
                        "error": "You have been signed out, so the passkey was not added."}), 401
    added = passkeys.finish_registration(user, session.pop("passkey_add", None),
                                         form.credential.data)
    if not added.ok:
        db.session.commit()
        return _error(ADD_PROBLEMS[added.problem])
    phone_proofs.notify(user, f"A passkey called “{added.passkey.name}” was added to your "
                              "account. You can now sign in with it, without a code.")
    db.session.commit()
    flash(f"Your passkey “{added.passkey.name}” is ready. Next time, choose “Sign in with a "
          "passkey” on the login page. We have emailed you a note of this change.", "success")
    return jsonify({"redirect": url_for("account.security", _anchor="passkeys")})


@bp.route("/account/passkeys/<int:passkey_id>/remove", methods=["POST"])
@limits.preference_changes
@login_required
def passkey_remove(passkey_id: int):
    user = current_user._get_current_object()
    # Back to the page the Remove button was on: the security page, or Your devices.
    page = "devices.index" if request.form.get("back") == "devices" else "account.security"
    if not RemoveForm().validate_on_submit():
        flash("That did not work. Please try again.", "warning")
        return redirect(url_for(page, _anchor="passkeys"))
    # As for the authenticator app: someone at a session left open must not take away the
    # client's way in (removing a passkey also ends the sessions it opened).
    refused = password_again(
        request.form.get("password"),
        url_for(page, remove=passkey_id, _anchor=f"passkey-{passkey_id}"),
        field=f"passkey-remove-password-{passkey_id}")
    if refused is not None:
        return refused
    removed = passkeys.remove(user, passkey_id, keep_token=session.get("sid"))
    if removed is not None:
        phone_proofs.notify(user, f"The passkey called “{removed.name}” was removed from your "
                                  "account. It no longer signs you in.")
        flash(f"We have removed the passkey “{removed.name}”. It no longer signs you in. You "
              "may also want to delete it from your device's password manager.", "success")
    db.session.commit()
    return redirect(url_for(page, _anchor="passkeys"))


# --- trusted devices ------------------------------------------------------------------

@bp.route("/account/devices/trusted/<int:device_id>/forget", methods=["POST"])
@limits.preference_changes
@login_required
def forget_device(device_id: int):
    user = current_user._get_current_object()
    back = "devices.index"
    if not RemoveForm().validate_on_submit():
        flash("That did not work. Please try again.", "warning")
        return redirect(url_for(back, _anchor="trusted-devices"))
    device = trusted_devices.forget(user, device_id, keep_token=session.get("sid"))
    db.session.commit()
    if device is not None:
        flash("We have forgotten that device. Next time you sign in there, we will ask for a "
              "code again.", "success")
    return redirect(url_for(back, _anchor="trusted-devices"))


@bp.app_template_global("device_words")
def _device_words(user_agent):
    """"Chrome 120 on Linux, computer": a trusted device as its owner would recognise it."""
    return device_words(user_agent)


@bp.app_template_global("sign_in_method")
def _sign_in_method(channel, destination):
    """"passkey “Work laptop”, no password or code": how a sign-in was done, for support."""
    return sign_in_method(channel, destination)
