"""The client's own settings: how codes reach them, and proving a new mobile number."""

from __future__ import annotations

import hashlib
from typing import Optional

from flask import (
    Blueprint, current_app, flash, get_flashed_messages, redirect, render_template, request,
    session, url_for,
)
from flask_login import current_user, login_required

from blueprints import kept_forms
from blueprints.safety import (
    current_password_right, id_arg, no_store, password_again, wrong_current_password,
)
from extensions import db
from forms import (
    PasskeyAddForm, PhoneProofActionForm, PhoneProofForm, RemoveForm, SecurityForm,
    TotpConfirmForm,
)
from models import User
from services import audit, clock, delivery
from services.signin import limits, phone_proofs
from services.authenticators import passkeys, totp
from services.phones import national

bp = Blueprint("account", __name__)


@bp.after_request
def never_cache(response):
    return no_store(response)


def _recently_signed_in() -> bool:
    return phone_proofs.recently_signed_in(session.get("sid"))


def _user() -> User:
    return current_user._get_current_object()


# After ten minutes the password is asked again (safety.password_again), by one form at a time:
# the settings form, unless the client chose another (its button opens a second step,
# ?confirm=<step>, or ?remove=<id> for a passkey's row), which then asks instead.
CONFIRMED_STEPS = {"passkey-add": "passkey-password", "totp-start": "totp-password",
                   "totp-remove": "totp-remove-password"}


def _confirming(settings_sent: bool) -> Optional[str]:
    """The one form whose password box the page shows: "settings", "passkey-remove", a
    CONFIRMED_STEPS name, or None (within ten minutes of signing in, none asks)."""
    if _recently_signed_in():
        return None
    if settings_sent:
        return "settings"
    for step, box in CONFIRMED_STEPS.items():
        # A refusal flashed beside a box (a wrong password) keeps that box on the page.
        if get_flashed_messages(category_filter=[f"password-again:{box}"]):
            return step
    chosen = request.args.get("confirm")
    if chosen in CONFIRMED_STEPS:
        return chosen
    return "passkey-remove" if id_arg("remove") is not None else "settings"


def _page(form: Optional[SecurityForm] = None, proof_form: Optional[PhoneProofForm] = None,
          status: int = 200, totp_form: Optional[TotpConfirmForm] = None,
          settings_step: bool = False):
    user = _user()
    proof = phone_proofs.pending_proof(user)
    db.session.commit()
    latest = phone_proofs.proof_delivery(proof) if proof else None
    state, state_text = delivery.describe(latest)
    confirming = _confirming(settings_sent=form is not None)
    if form is None:
        if proof is not None:
            # Folded under the proof as "use a different number": what was asked, to correct.
            shown = {"channel": session.get("proof_channel", "sms"),
                     "phone": national(proof.phone)}
        else:
            shown = {"channel": user.channel, "phone": national(user.phone)}
        form = SecurityForm(formdata=None, **shown)
        kept_forms.fill(form, user.id)
    if settings_step and set(form.errors) <= {"password"}:
        # Save was pressed with no box shown: the box now asked for, where the browser
        # scrolls and the keyboard opens.
        form.password.render_kw = {**(form.password.render_kw or {}), "autofocus": True}
    if proof_form is None:
        proof_form = PhoneProofForm(formdata=None, channel=session.get("proof_channel", "sms"))
    return render_template(
        "account/security.html", user=user, form=form, proof=proof, proof_form=proof_form,
        national=national,
        needs_password=not _recently_signed_in(), confirming=confirming,
        settings_step=settings_step,
        delivery_state=state, delivery_text=state_text, sms_offered=delivery.sms_offered(),
        **_fewer_codes(user, totp_form, confirming),
    ), status


def _fewer_codes(user: User, totp_form: Optional[TotpConfirmForm],
                 confirming: Optional[str]) -> dict:
    """What the passkeys, authenticator app and trusted devices sections show."""
    app = totp.authenticator_of(user)
    setup = None
    if _setup_here(user) is not None:
        secret = totp.secret_of(app)
        uri = totp.provisioning_uri(user, secret)
        # The otpauth:// address opens the app on this phone; the QR code carries it to another.
        setup = {"secret": totp.grouped(secret), "uri": uri, "qr": totp.qr_data_uri(uri)}
    # The name typed before "Add a passkey" opened its second step comes with it.
    name = request.args.get("name", "")[:60] if confirming == "passkey-add" else ""
    return {
        "passkeys": passkeys.passkeys_of(user),
        "passkey_form": PasskeyAddForm(formdata=None, name=name),
        "remove_form": RemoveForm(formdata=None), "totp_app": app, "totp_setup": setup,
        # Set up before SECRET_KEY was changed: its codes can no longer be checked.
        "totp_unreadable": app is not None and app.confirmed_at is not None
                           and totp.secret_of(app) is None,
        "totp_elsewhere": setup is None and totp.setup_waiting(user) is not None,
        # A passkey the client chose to remove, whose row now asks for the password.
        "removing": id_arg("remove"),
        "totp_form": totp_form or TotpConfirmForm(formdata=None),
    }


def _setup_mark(app) -> str:
    """Names one setup (its secret is encrypted afresh each time) without revealing it."""
    return hashlib.sha256(app.secret_encrypted.encode()).hexdigest()[:32]


def _setup_here(user: User):
    """The setup waiting for its first code, if this browser's session began it.

    The secret is shown, and the setup confirmed, only there: another session of the same
    account (an old one, or one someone else holds) never sees the secret. The password, or
    a recent sign-in, was asked for when it began."""
    waiting = totp.setup_waiting(user)
    if waiting is None or session.get("totp_setup") != _setup_mark(waiting):
        return None
    return waiting


@bp.route("/account/security", methods=["GET", "POST"])
@limits.preference_changes
@login_required
def security():
    if request.method == "GET":
        return _page()
    if request.form.get("form") in ("totp-start", "totp-confirm", "totp-remove") or (
            "code" in request.form and _totp_waiting() and not _proof_waiting()):
        return _totp()
    if "code" in request.form:
        return _prove()
    if "action" in request.form:
        return _proof_action()
    return _change()


def _change():
    """The settings form: a channel, perhaps a new number, perhaps the password."""
    user = _user()
    form = SecurityForm()
    if not form.validate_on_submit():
        return _page(form, status=422)
    if form.channel.data == "totp" and totp.confirmed_authenticator(user) is None:
        form.channel.errors.append("Set up your authenticator app below before choosing it.")
        return _page(form, status=422)
    change = phone_proofs.plan_change(user, form.channel.data, form.phone.data)
    if change.action == "refuse":
        form.phone.errors.append(change.problem)
        return _page(form, status=422)
    if change.action == "none":
        flash("Nothing has changed: that is how you get your codes already.", "info")
        return redirect(url_for("account.security"))
    if not _recently_signed_in():
        if "password" not in request.form:
            # Saved while another form was asking for the password (or from a page shown
            # within the ten minutes): this form now asks, calmly, not as a mistake.
            return _page(form, status=422, settings_step=True)
        if not form.password.data:
            form.password.errors.append("Enter your password to make this change.")
            return _page(form, status=422)
        if not current_password_right(user, form.password.data):
            return wrong_current_password(form.password, lambda: _page(form, status=422))

    if change.action == "prove":
        started = phone_proofs.start_proof(user, change.phone, ip=audit.client_ip())
        db.session.commit()
        if not started.ok:
            flash(_wait_message(started), "warning")
            return redirect(url_for("account.security"))
        session["proof_channel"] = change.channel
        flash(f"We have sent a code by text message to {national(change.phone)}. Enter it below "
              "to confirm the number. Nothing changes until you do.", "success")
        return redirect(url_for("account.security"))

    summary = phone_proofs.apply_change(user, change)
    db.session.commit()
    flash(f"Saved. {summary} We have emailed you a note of this change.", "success")
    return redirect(url_for("account.security"))


def _wait_message(started: phone_proofs.ProofStart) -> str:
    if started.message:
        return started.message
    if started.reason == "cooldown":
        return (f"We sent a code a moment ago. Please wait {started.wait_seconds} seconds before "
                "asking for another: it may already be on its way.")
    minutes = max(1, (started.wait_seconds + 59) // 60)
    return (f"We have sent {phone_proofs.MAX_PROOFS_PER_HOUR} codes to check numbers in the last "
            f"hour, which is the most we send. Please try again in {minutes} "
            f"minute{'s' if minutes != 1 else ''}, or keep getting your codes by email.")


def _prove():
    """The code sent to a new number."""
    user = _user()
    form = PhoneProofForm()
    if not form.validate_on_submit():
        return _page(proof_form=form, status=422)
    check = phone_proofs.check_proof(user, form.code.data, channel=_proved_channel(form))
    db.session.commit()
    if check.outcome == phone_proofs.ACCEPTED:
        session.pop("proof_channel", None)
        # The client's own page shows their own number in full, once (the emailed note, which
        # check.summary words, masks it).
        number = national(check.proof.phone)
        how = {"sms": f"Your sign-in codes now come by text message to {number}.",
               "totp": "Your sign-in codes still come from your authenticator app."}.get(
            user.channel, "Your sign-in codes still come by email.")
        flash(f"Thank you: {number} is confirmed. {how} "
              "We have emailed you a note of this change.", "success")
        return redirect(url_for("account.security"))
    if check.outcome == phone_proofs.WRONG:
        left = check.tries_left
        form.code.errors.append(
            f"That code is not right. Check the newest text message and try again. "
            f"You have {left} {'try' if left == 1 else 'tries'} left.")
        form.code.data = ""
        return _page(proof_form=form, status=422)
    if check.outcome == phone_proofs.LOCKED:
        flash("That was too many wrong codes, so we have stopped checking this number. "
              "Nothing has changed. Enter the number again to get a new code.", "error")
    elif check.outcome == phone_proofs.EXPIRED:
        flash(f"That code ran out at {clock.hhmm(check.proof.expires_at)}: codes work for 10 minutes. "
              "Nothing has changed. Enter the number again to get a new code.", "error")
    else:
        flash("There is no new number waiting to be confirmed. Enter your number to get a code.",
              "warning")
    return redirect(url_for("account.security"))


def _proved_channel(form: PhoneProofForm) -> str:
    """The channel chosen with the new number, which applies once the number is proved.

    A client whose codes come from the app keeps it when they add a number; if the app has
    been removed since, codes come by email (never switched to texts no one chose)."""
    chosen = form.channel.data
    if chosen == "totp":
        return "totp" if totp.confirmed_authenticator(_user()) is not None else "email"
    return chosen if chosen in ("email", "sms") else "sms"


def _proof_action():
    """Send a new code to the number being proved, or stop."""
    user = _user()
    form = PhoneProofActionForm()
    if not form.validate_on_submit() or form.action.data not in ("resend", "cancel"):
        flash("That did not work. Please try again.", "warning")
        return redirect(url_for("account.security"))
    if form.action.data == "cancel":
        proof = phone_proofs.cancel_proof(user)
        db.session.commit()
        if proof is not None:
            flash(f"We have stopped checking {national(proof.phone)}. Nothing has changed.", "info")
        return redirect(url_for("account.security"))
    proof = phone_proofs.pending_proof(user)
    if proof is None:
        db.session.commit()
        flash("There is no new number waiting to be confirmed. Enter your number to get a code.",
              "warning")
        return redirect(url_for("account.security"))
    started = phone_proofs.start_proof(user, proof.phone, ip=audit.client_ip())
    db.session.commit()
    if started.ok:
        flash(f"We have sent a new code to {national(proof.phone)}. The earlier code no longer "
              "works.", "success")
    else:
        flash(_wait_message(started), "warning")
    return redirect(url_for("account.security"))


# --- the authenticator app (services/authenticators/totp.py) ------------------------------

def _totp_waiting() -> bool:
    return _setup_here(_user()) is not None


def _proof_waiting() -> bool:
    return phone_proofs.pending_proof(_user()) is not None


def _totp():
    """Start setting up an authenticator app, confirm it with its first code, or remove it."""
    user = _user()
    action = request.form.get("form") or "totp-confirm"
    if action == "totp-confirm":
        form = TotpConfirmForm()
        if not form.validate_on_submit():
            return _page(totp_form=form, status=422)
        if totp.setup_waiting(user) is not None and _setup_here(user) is None:
            flash("That setup was begun in another browser, so it can only be finished there. "
                  "Or start again here.", "warning")
            return redirect(url_for("account.security", _anchor="authenticator-app"))
        check = totp.confirm_setup(user, form.code.data)
        if check.outcome == totp.SETUP_EXPIRED:
            flash("Setting up the authenticator app took longer than "
                  f"{totp.SETUP_LIFETIME.seconds // 60} minutes, so we have stopped it. Start "
                  "again to get a new QR code, and delete the old entry from your app.",
                  "warning")
            return redirect(url_for("account.security", _anchor="authenticator-app"))
        if check.outcome != totp.ACCEPTED:
            db.session.commit()
            form.code.errors.append(
                f"That code is not right: your phone's clock seems to be "
                f"{totp.drift_words(check.steps_off)}. Turn on automatic date and time, then "
                "enter the new code." if check.steps_off else
                "That code is not right. Enter the 6-digit code your app shows now for "
                f"{current_app.config['PORTAL_NAME']}.")
            form.code.data = ""
            return _page(totp_form=form, status=422)
        phone_proofs.notify(user, "An authenticator app was set up on your account. Your "
                                  "sign-in codes now come from the app.")
        db.session.commit()
        session.pop("totp_setup", None)
        flash("Your authenticator app is set up. From now on, after your password, enter the "
              "code the app shows. We have emailed you a note of this change.", "success")
        return redirect(url_for("account.security", _anchor="authenticator-app"))
    if not RemoveForm().validate_on_submit():
        flash("That did not work. Please try again.", "warning")
        return redirect(url_for("account.security", _anchor="authenticator-app"))
    # Stopping a setup that never got its first code changes nothing the client relies on,
    # so it needs no password; starting one, or removing a working app, does.
    stopping_setup = action == "totp-remove" and totp.confirmed_authenticator(user) is None
    if not stopping_setup:
        refused = password_again(
            request.form.get("password"),
            url_for("account.security", confirm=action, _anchor="authenticator-app"),
            field=CONFIRMED_STEPS[action])
        if refused is not None:
            return refused
    if action == "totp-start":
        session["totp_setup"] = _setup_mark(totp.begin_setup(user))
        db.session.commit()
        # Said, so that a screen reader hears what the press did (static/js/arrival-focus.js
        # focuses it under the section's heading), not only the page's title again.
        flash(f"Now add {current_app.config['PORTAL_NAME']} to your authenticator app: the "
              "steps are below.", "info")
        return redirect(url_for("account.security", _anchor="authenticator-app"))
    session.pop("totp_setup", None)
    was_live = totp.remove(user)
    if was_live:
        phone_proofs.notify(user, "The authenticator app was removed from your account. Your "
                                  "sign-in codes come by email.")
    db.session.commit()
    flash("We have stopped using your authenticator app. Your sign-in codes come by email. You "
          "can delete the entry from the app." if was_live else
          "We have stopped setting up the authenticator app.", "success")
    return redirect(url_for("account.security", _anchor="authenticator-app"))
