"""Passwords without a shell: forgotten passwords, reset and invitation links, changing one.

GET on a link only shows a form (mail scanners open links); a POST with a CSRF token uses it.
"""

from __future__ import annotations

import hashlib

from flask import (
    Blueprint, flash, redirect, render_template, request, session, url_for,
)
from flask_login import current_user, login_required, logout_user
from sqlalchemy import select

from blueprints import kept_forms
from blueprints.safety import (
    current_password_right, no_store, token_in_address, wrong_current_password,
)
from extensions import db
from models import Event
from forms import ChangePasswordForm, ForgotPasswordForm, NewPasswordForm
from services import audit, clock
from services.signin import codes, limits, sessions
from services.accounts import devices, lifecycle, policy, tokens
from services.authenticators import passkeys

bp = Blueprint("passwords", __name__)


@bp.after_request
def never_cache(response):
    return token_in_address(no_store(response))


@bp.route("/password/forgot", methods=["GET", "POST"])
@limits.forgotten_passwords
def forgot():
    form = ForgotPasswordForm()
    kept_forms.fill(form)
    if not form.validate_on_submit():
        return render_template("passwords/forgot.html", form=form), \
            422 if request.method == "POST" else 200
    lifecycle.request_reset(form.email.data)
    db.session.commit()
    # The same page whether or not the address has an account.
    return render_template("passwords/forgot_sent.html", email=form.email.data)


def _link(token: str, purpose: str):
    """The link's check, or a page saying why it cannot be used."""
    check = tokens.check(token, purpose)
    if check.ok:
        return check, None
    if _pressed_twice(check):
        # The first press saved the password; the browser shows this, the second, answer.
        flash("Your password is saved: the button was pressed twice, and the first press "
              "saved it. Now sign in with your email address and new password.", "success")
        return check, redirect(url_for("auth.login"))
    lifecycle.note_refused_link(check, purpose)
    db.session.commit()
    outcome = lifecycle.refused_outcome(check)
    words = lifecycle.refusal(purpose, outcome)
    return check, (render_template("passwords/link_refused.html", refusal=words,
                                   purpose=purpose, outcome=outcome), 410)


def _form_mark() -> str:
    """Names the page a new password was posted from: a second press of the same page posts
    the same CSRF token; another browser's page, or a later one, has its own."""
    posted = request.form.get("csrf_token", type=str) or ""
    return hashlib.sha256(posted.encode()).hexdigest()[:16]


def _pressed_twice(check: tokens.Check) -> bool:
    """Whether this post is a second press of the very form whose first press just used the
    link (a double click, or a press repeated while the first was under way)."""
    since = clock.now() - lifecycle.DOUBLE_PRESS
    if not (request.method == "POST" and check.outcome == tokens.USED
            and check.user is not None and check.user.is_active
            and check.token.used_at > since):
        return False
    marks = db.session.scalars(
        select(Event.detail).where(Event.type == "password_set",
                                   Event.user_id == check.user.id,
                                   Event.created_at > since)).all()
    return any((detail or {}).get("form") == _form_mark() for detail in marks)


def _new_password_page(template: str, form: NewPasswordForm, user, status: int = 200):
    return render_template(template, form=form, user=user, rules=policy,
                           other=_someone_else_here(user)), status


def _someone_else_here(user):
    """The account signed in in this browser, when it is not the one whose password the link
    sets (a shared computer): saving signs it out here, so that the sign-in page is next."""
    if current_user.is_authenticated and current_user.id != user.id:
        return current_user._get_current_object()
    return None


def _take_new_password(check: tokens.Check, template: str, by: str):
    """Check the new password typed on a reset or welcome page and save it."""
    user = check.user
    form = NewPasswordForm()
    if request.method == "GET":
        return _new_password_page(template, form, user)
    if not form.validate_on_submit():
        return _new_password_page(template, form, user, 422)
    problem = lifecycle.password_problem(user, form.password.data)
    if problem:
        form.password.errors.append(problem)
        return _new_password_page(template, form, user, 422)
    if not lifecycle.use_link(check):
        db.session.rollback()
        outcome = lifecycle.link_outcome(check.token)
        words = lifecycle.refusal(check.token.purpose, outcome)
        return render_template("passwords/link_refused.html", refusal=words,
                               purpose=check.token.purpose, outcome=outcome), 410
    # A link from the mailbox lifts a pause from wrong passwords or codes: say so, to a client
    # who was told signing in is paused.
    paused = user.is_locked(clock.now())
    other = _someone_else_here(user)
    signed_out = f" We have signed {other.email} out of this browser." if other else ""
    lifecycle.set_password(user, form.password.data, by=by, form_mark=_form_mark())
    if by == "invitation":
        audit.record("invitation_accepted", user_id=user.id)
    if other is not None:
        sessions.revoke(session.get("sid"))
        audit.record("logout", user_id=other.id,
                     detail={"reason": "another account's password was set in this browser"})
    db.session.commit()
    if current_user.is_authenticated:
        logout_user()  # this account's session ended with the rest; another's just now
        session.clear()
    session["login_email"] = user.email  # the sign-in page fills it in (auth.login)
    if user.is_locked(clock.now()):  # codes by text or app: the lock guards them too
        flash(f"Your password is saved. Signing in is still paused until "
              f"{clock.hhmm(user.locked_until)}, "
              "because of too many wrong passwords or codes; then sign in with your email "
              "address and new password." + signed_out, "success")
        return redirect(url_for("auth.login"))
    flash("Your password is saved" + (", and signing in is no longer paused" if paused else "")
          + f". Now sign in with your email address and new password; {_then(user, by)}."
          + signed_out, "success")
    return redirect(url_for("auth.login"))


def _then(user, by: str) -> str:
    """What comes after the password, in the words of someone who has (or has not yet) done
    it: a first sign-in is not "as usual"."""
    channel = codes.channel_for(user)
    if channel == "totp":
        return "then enter the code your authenticator app shows"
    sent = "text you" if channel == "sms" else "email you"
    return f"we will {sent} a sign-in code" + (" as usual" if by != "invitation" else "")


@bp.route("/password/reset/<token>", methods=["GET", "POST"])
@limits.link_uses
def reset(token: str):
    check, refused = _link(token, "reset")
    if refused:
        return refused
    return _take_new_password(check, "passwords/reset.html", "reset")


@bp.route("/welcome/<token>", methods=["GET", "POST"])
@limits.link_uses
def welcome(token: str):
    check, refused = _link(token, "invitation")
    if refused:
        return refused
    return _take_new_password(check, "passwords/welcome.html", "invitation")


# --- a signed-in client changes their password ----------------------------------------

@bp.route("/account/password", methods=["GET", "POST"])
@limits.account_changes
@login_required
def change():
    user = current_user._get_current_object()
    form = ChangePasswordForm()

    def page(status: int = 422):
        return render_template("passwords/change.html", form=form, user=user,
                               rules=policy), status

    if request.method == "GET":
        return page(200)
    if not form.validate_on_submit():
        return page()
    if not current_password_right(user, form.current_password.data):
        return wrong_current_password(form.current_password, page)
    problem = lifecycle.password_problem(user, form.password.data)
    if problem:
        form.password.errors.append(problem)
        return page()
    # A new password stops a change of address still waiting for its link (whoever asked
    # may not be the owner); the owner who asked is told, or its link just "does not work".
    waiting = devices.pending_email_change(user)
    ended = lifecycle.set_password(user, form.password.data, by="change",
                                   keep_token=session.get("sid"))
    fresh = sessions.rotate(session.get("sid"))  # a copy of the cookie dies too
    db.session.commit()
    if fresh:
        session["sid"] = fresh
    flash("Your password is changed. " + (
        "We have signed you out everywhere else. " if ended else "")
        + "We have emailed you a note of this change." + (
        f" We have also stopped the change of your sign-in email address to "
        f"{waiting} that was waiting: to use that address, ask again."
        if waiting else "") + (
        " Your passkeys still sign you in without it: remove any you do not recognise on "
        "the “Your devices” page." if passkeys.passkeys_of(user) else ""), "success")
    return redirect(url_for("passwords.change"))
