"""/account/email: change the sign-in email; the new address is proved by a link first."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, logout_user
from sqlalchemy.exc import IntegrityError

from blueprints import kept_forms
from blueprints.safety import (
    current_password_right, no_store, token_in_address, wrong_current_password,
)
from extensions import db
from forms import ChangeEmailForm, ConfirmForm, ConfirmNewEmailForm
from services import audit
from services.signin import limits, passwords, sessions
from services.accounts import email_change, lifecycle, messages, tokens

bp = Blueprint("email_change", __name__)


@bp.after_request
def never_cache(response):
    return token_in_address(no_store(response))


@bp.route("/account/email", methods=["GET", "POST"])
@limits.account_changes
@login_required
def change():
    user = current_user._get_current_object()
    form = ChangeEmailForm()
    kept_forms.fill(form, user.id)
    pending = email_change.waiting(user)

    def page(status: int = 422):
        return render_template("account/email.html", form=form, user=user,
                               pending=pending), status

    if request.method == "GET":
        return page(200)
    if not form.validate_on_submit():
        return page()
    if not current_password_right(user, form.current_password.data):
        return wrong_current_password(form.current_password, page)
    problem = email_change.address_problem(user, form.email.data)
    if problem:
        form.email.errors.append(problem)
        return page()
    again_at = email_change.next_request_at(user)
    if again_at is not None:
        db.session.commit()
        form.email.errors.append(
            f"You have asked for a new address {email_change.REQUESTS_PER_HOUR} times in the "
            f"last hour, which is the most we send. Please try again after "
            f"{messages.when(again_at)}. Nothing has changed.")
        return page(429)
    email_change.request_change(user, form.email.data)
    db.session.commit()
    # The same words whether or not the new address already has an account.
    flash(f"We have sent a link to {form.email.data}. Open it to confirm the address; it works "
          f"for one hour. Until then, you sign in with {user.email} as before.", "success")
    return redirect(url_for("email_change.change"))


@bp.route("/account/email/confirm/<token>", methods=["GET", "POST"])
@limits.link_uses
def confirm(token: str):
    check = tokens.check(token, "email")
    if not check.ok:
        lifecycle.note_refused_link(check, "email")
        db.session.commit()
        outcome = lifecycle.refused_outcome(check)
        return render_template("passwords/link_refused.html", purpose="email", outcome=outcome,
                               refusal=lifecycle.refusal("email", outcome)), 410
    here = current_user.is_authenticated and current_user.id == check.token.user_id
    # Signed in here, the client has proved who they are. Elsewhere the link alone is not
    # enough: a mistyped address would hand the account to whoever owns it (they would
    # confirm, then reset the password to their own mailbox). The password is asked too.
    form = ConfirmForm() if here else ConfirmNewEmailForm()
    # Another account signed in here is signed out of this browser by confirming: said first.
    other = current_user if current_user.is_authenticated and not here else None

    def page(status: int = 422):
        return render_template("account/email_confirm.html", form=form, other=other,
                               new_email=check.token.new_email), status

    if request.method == "GET":
        return page(200)
    if not form.validate_on_submit():
        return page()
    if not here:
        refused = _password_refused(check.user, form.current_password.data)
        if refused:
            form.current_password.errors.append(refused)
            return page()
    new_email = check.token.new_email
    try:
        result = email_change.confirm(check, session.get("sid") if here else None)
        if result.ok:
            # A copy of this browser's cookie dies with the other sessions.
            fresh = sessions.rotate(session.get("sid")) if here else None
            db.session.commit()
            if fresh:
                session["sid"] = fresh
    except IntegrityError:
        # Two accounts confirming one new address at once both pass the check; the unique
        # index stops the second, which is told so rather than shown an error page.
        db.session.rollback()
        result = email_change.taken(new_email)
    if not result.ok:
        db.session.rollback()
        # Said in place of the button, which could only be refused again.
        return render_template("account/email_confirm.html", form=form, new_email=new_email,
                               refused=result.message), 409
    message = (f"Done: you now sign in with {result.new_email}. We have told {result.old_email} "
               "about the change and signed you out everywhere else.")
    if here:
        flash(message, "success")
        return redirect(url_for("email_change.change"))
    if current_user.is_authenticated:
        # Another account signed in here: signed out on the server, not only in the cookie.
        message += f" We have signed {current_user.email} out of this browser."
        sessions.revoke(session.get("sid"))
        audit.record("logout", user_id=current_user.id,
                     detail={"reason": "another account's new address was confirmed here"})
        db.session.commit()
        logout_user()
        session.clear()
    flash(message + " Sign in with your new address.", "success")
    return redirect(url_for("auth.login"))


def _password_refused(user, typed: str) -> str | None:
    """Why the password given with a new-address link is refused, or None when it is right.
    A wrong one counts towards the account's lock, as at /login; a locked account's password
    is not checked at all."""
    refusal = limits.lock_refusal(user)
    if refusal is None and passwords.verify_password(user, typed):
        return None
    if refusal is None:
        audit.record("password_failed", user_id=user.id, outcome="wrong",
                     detail={"where": "new address link"})
        refusal = limits.note_failure(user)
        db.session.commit()
    if refusal is not None:
        return refusal.message
    return ("That is not the password of the account. Enter the password you sign in with "
            "now; the address has not changed yet.")
