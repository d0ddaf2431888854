"""Support console, accounts without a shell: add and import clients, invitations, staff roles.

These routes hang on the support blueprint (blueprints.support imports this module), so the
same rule holds: anyone who is not staff gets a 404, and every POST checks its CSRF token.
"""

from __future__ import annotations

from typing import Optional

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from blueprints import kept_forms
from blueprints import support as support_views
from blueprints.support import ACTIONS, Action, bp
from extensions import db
from forms import GiveBackForm, ImportClientsForm, NewClientForm, StaffRoleForm
from models import User
from services import audit, support
from services.signin import limits, sessions
from services.signin.codes import hold_account
from services.accounts import invitations, lifecycle


def _staff() -> User:
    return current_user._get_current_object()


def _is_admin() -> bool:
    return current_user.role == "admin"


# --- actions on one account (confirmed on support/confirm.html) ------------------------

def _not_your_own(staff: User, user: User) -> Optional[str]:
    if user.id == staff.id:
        return ("This is your own account, so you cannot switch it off here. If it should be "
                "switched off, ask another admin to do it.")
    return None


def _another_admin_stays(user: User) -> bool:
    """Whether an admin other than this one has an account switched on.

    The admins' rows are locked while the change is made, so two admins switching each other
    off at the same moment cannot leave the firm with none."""
    admins = db.session.scalars(
        select(User.id).where(User.role == "admin", User.deactivated_at.is_(None))
        .order_by(User.id).with_for_update()).all()
    return any(admin != user.id for admin in admins)


def _only_admin(user: User, what: str) -> str:
    return (f"{user.email} is the only admin whose account is switched on, so {what}: someone "
            "must be able to manage staff. Make someone else an admin first.")


def _deactivate(user: User, staff: User) -> support.ActionResult:
    if user.role == "admin" and user.is_active and not _another_admin_stays(user):
        return support.ActionResult(False, _only_admin(user, "it stays on"))
    if lifecycle.deactivate(user, staff):
        return support.ActionResult(True, f"{user.email} is switched off: they cannot sign in, "
                                          "and every session of theirs has ended.")
    return support.ActionResult(False, f"{user.email} was already switched off.")


def _reactivate(user: User, staff: User) -> support.ActionResult:
    if lifecycle.reactivate(user, staff):
        return support.ActionResult(True, f"{user.email} is switched on and can sign in again.")
    return support.ActionResult(False, f"{user.email} was already switched on.")


def _send_reset(user: User, staff: User) -> support.ActionResult:
    if not (user.is_active and user.has_password):
        return support.ActionResult(False, f"{user.email} cannot get a reset link now.")
    just_sent = support.link_just_sent(user, "reset")
    if just_sent is not None:
        return support.ActionResult(False, support.link_just_sent_words(
            user, just_sent, "A link to set a new password"))
    problem = invitations.link_cap_problem(user)
    if problem:
        return support.ActionResult(False, problem)
    lifecycle.send_reset(user, staff)
    return support.ActionResult(True, f"A link to set a new password is on its way to "
                                      f"{user.email}. It works for one hour.")


def _resend_invitation(user: User, staff: User) -> support.ActionResult:
    just_sent = support.link_just_sent(user, "invitation")
    if just_sent is not None:
        return support.ActionResult(False, support.link_just_sent_words(
            user, just_sent, "An invitation"))
    problem = invitations.resend(user, staff)
    if problem:
        return support.ActionResult(False, problem)
    return support.ActionResult(True, f"A new invitation is on its way to {user.email}. "
                                      "Earlier invitation links no longer work.")


def _revoke_invitation(user: User, staff: User) -> support.ActionResult:
    if invitations.revoke(user, staff):
        return support.ActionResult(True, f"The invitation of {user.email} is withdrawn: its "
                                          "link no longer works.")
    return support.ActionResult(False, f"{user.email} has no invitation waiting.")


def _give_back(user: User, staff: User, owner_email: Optional[str],
               shown_email: Optional[str] = None) -> support.ActionResult:
    # The form checked the address its page was shown for; checked again under the account's
    # row lock, read afresh, for a new address confirmed during this very request.
    hold_account(user)
    db.session.refresh(user)
    if owner_email in (None, user.email):
        # A double click (or two of the staff at once): the first gave it back, here.
        just = support.given_back_just_now(user)
        if just is not None:
            return support.ActionResult(False, support.given_back_just_now_words(user, *just))
    moved = lifecycle.moved_since_shown(user, shown_email) if owner_email is None else None
    if moved is not None:
        return support.ActionResult(False, moved)
    try:
        done = lifecycle.recover(user, owner_email, staff, by="support")
    except lifecycle.AddressTaken as taken:
        return support.ActionResult(False, str(taken))
    return support.ActionResult(True, done.summary(user))


def _not_your_own_to_give_back(staff: User, user: User) -> Optional[str]:
    if user.id == staff.id:
        return ("This is your own account, so you cannot give it back here. If someone else "
                "got into it, ask another admin to do it.")
    return None


ACTIONS.update({
    "send-reset": Action(
        "Send a link to set a new password", _send_reset,
        applies=lambda u: u.is_active and u.has_password,
        explain=lambda u: f"We will email {u.email} a link to choose a new password. It works "
                          "once, for one hour. Their current password keeps working until they "
                          "use it."),
    "deactivate": Action(
        "Switch the account off", _deactivate, applies=lambda u: u.is_active and u.has_password,
        refused=_not_your_own,
        explain=lambda u: f"{u.email} will not be able to sign in or get codes. Every session "
                          "and sign-in of theirs ends now, and we email them to say so. You "
                          "can switch the account on again later."),
    "reactivate": Action(
        # Also for an invited account switched off: only this, never a new invitation, may
        # switch it on again (the trail then names who did).
        "Switch the account on again", _reactivate, applies=lambda u: not u.is_active,
        explain=lambda u: f"{u.email} will be able to sign in again with their password and a "
                          "code. We email them to say so." if u.has_password else
                          f"{u.email} will be switched on again. They have no password yet: "
                          "send the invitation again so they can choose one."),
    "resend-invitation": Action(
        "Send the invitation again", _resend_invitation, applies=invitations.may_resend,
        explain=lambda u: f"We will email {u.email} a new invitation link, good for 7 days. "
                          "Earlier links stop working."),
    "give-back": Action(
        # For a client who says someone else got in (the notice of a changed address tells
        # them to contact the firm): the console's `flask users recover`.
        "Give the account back", _give_back, applies=lambda u: u.has_password,
        refused=_not_your_own_to_give_back, form=GiveBackForm),
    "revoke-invitation": Action(
        "Withdraw the invitation", _revoke_invitation,
        applies=lambda u: not u.has_password and u.is_active,
        explain=lambda u: f"The invitation link sent to {u.email} stops working, and the "
                          "account stays switched off. You can send a new invitation later."),
})


# --- adding clients -------------------------------------------------------------------

@bp.route("/clients/new", methods=["GET", "POST"])
@limits.staff_changes
def new_client():
    form = NewClientForm()
    kept_forms.fill(form, current_user.id)
    if not _is_admin():
        form.role.data = "client"  # only an admin may invite staff
    if not form.validate_on_submit():
        return render_template("support/new_client.html", form=form, is_admin=_is_admin()), \
            422 if request.method == "POST" else 200
    candidate = invitations.check(invitations.Candidate(
        email=form.email.data, name=form.name.data or "", phone=form.phone.data or "",
        channel=form.channel.data, role=form.role.data if _is_admin() else "client"))
    if candidate.only_taken and invitations.just_invited([candidate], _staff()):
        # A double click: the first press invited them.
        user = db.session.scalar(select(User).where(User.email == candidate.email))
        return _invited(user)
    if not candidate.ok:
        for about, problem in candidate.issues:
            (form[about] if about in form else form.email).errors.append(problem)
        return render_template("support/new_client.html", form=form, is_admin=_is_admin()), 422
    user = _invite(candidate)
    if user is None:
        if invitations.just_invited([candidate], _staff()):
            return _invited(db.session.scalar(select(User).where(User.email == candidate.email)))
        form.email.errors.append(invitations.taken_words(candidate.email))
        return render_template("support/new_client.html", form=form, is_admin=_is_admin()), 422
    return _invited(user)


def _invited(user: User):
    flash(f"Invitation sent to {user.email}. Its link works for 7 days; you can see who has not "
          "accepted yet under Invitations.", "success")
    return redirect(url_for("support.client", user_id=user.id))


@bp.route("/clients/import", methods=["GET", "POST"])
@limits.staff_changes
def import_clients():
    form = ImportClientsForm()
    if request.method == "GET":
        return render_template("support/import.html", form=form, preview=None)
    if not form.validate_on_submit():
        return render_template("support/import.html", form=form, preview=None), 422
    text, problem = _uploaded_text(form)
    if text is None:
        form.file.errors.append(problem)
        return render_template("support/import.html", form=form, preview=None), 422
    preview = invitations.read_csv(text)
    if form.confirmed.data == "yes" and preview.ok:
        invited = _import(preview)
        if invited is not None:
            return _imported(len(invited))
        preview = _raced_preview(text)
    if form.confirmed.data == "yes" and _pressed_twice(preview):
        return _imported(len(preview.rows))
    db.session.rollback()
    form.text.data = text
    return render_template("support/import.html", form=form, preview=preview), \
        200 if preview.ok else 422


@bp.errorhandler(RequestEntityTooLarge)
def too_large(error: RequestEntityTooLarge):
    """A CSV over the request cap: the import page, saying how to send it, not a bare 413."""
    from app import render_error

    if not current_user.is_authenticated or not current_user.is_staff:
        return render_error(404, "There is nothing at this address.")  # as staff_only says
    if request.endpoint != "support.import_clients":
        return render_error(413, "That was far more data than any form here takes.")
    form = ImportClientsForm(formdata=None)
    kib = (current_app.config.get("MAX_CONTENT_LENGTH") or 0) // 1024
    form.file.errors = [
        f"That is more than we can check at once: at most {kib} KB, enough for "
        f"{invitations.MAX_IMPORT_ROWS} clients. Split the file into smaller ones, keeping the "
        "first row of headings in each, and import them one after another. Nothing has been "
        "imported."]
    return render_template("support/import.html", form=form, preview=None), 413


def _imported(count: int):
    flash(f"Invited {count} client{'s' if count != 1 else ''}. Each gets an invitation email "
          "whose link works for 7 days.", "success")
    return redirect(url_for("support.invitations"))


def _pressed_twice(preview: invitations.Preview) -> bool:
    """Whether this confirmed file is the one this staff member imported a moment ago (a
    double click): every row's only problem is that the first press invited it."""
    return (bool(preview.rows) and not preview.problems
            and all(row.only_taken for row in preview.rows)
            and invitations.just_invited(preview.rows, _staff()))


def _invite(candidate: invitations.Candidate) -> Optional[User]:
    """Invite and commit; None when someone added the address since it was checked."""
    try:
        user = invitations.invite(candidate, actor=_staff())
        db.session.commit()
        return user
    except IntegrityError:
        # Two staff adding one address at once both pass the check; the unique index stops
        # the second, which is told what happened rather than shown an error page.
        db.session.rollback()
        if db.session.scalar(select(User.id).where(User.email == candidate.email)) is None:
            raise
        return None


def _import(preview: invitations.Preview) -> Optional[list[User]]:
    """Import every row and commit; None (nothing imported) when an address was taken since."""
    try:
        invited = invitations.import_all(preview, _staff())
        audit.record("clients_imported", actor_id=_staff().id, detail={"count": len(invited)})
        db.session.commit()
        return invited
    except IntegrityError:
        db.session.rollback()
        return None


def _raced_preview(text: str) -> invitations.Preview:
    """The file checked again after an import lost a race, naming the rows now taken."""
    preview = invitations.read_csv(text)
    if preview.ok:
        preview.problems.append("Someone added one of these clients at the same moment, so "
                                "nothing has been imported. Please try again.")
    return preview


def _uploaded_text(form: ImportClientsForm) -> tuple[Optional[str], str]:
    """The file's text if one was chosen, else the pasted rows; or None and why."""
    upload = form.file.data
    if upload is not None and getattr(upload, "filename", ""):
        return invitations.csv_text(upload.read())
    return form.text.data or "", ""


@bp.route("/invitations", endpoint="invitations")
def invitations_page():
    pending = invitations.pending(support.hidden_roles(current_user))
    return render_template("support/invitations.html", pending=pending)


# --- staff roles (admins) -------------------------------------------------------------

@bp.route("/staff")
def staff():
    if not _is_admin():
        abort(404)
    people = db.session.scalars(
        select(User).where(User.role.in_(("support", "admin"))).order_by(User.email)).all()
    return render_template("support/staff.html", people=people)


@bp.route("/staff/<int:user_id>", methods=["GET", "POST"])
@limits.staff_changes
def staff_role(user_id: int):
    if not _is_admin():
        support_views.note_refused(support.get_user(user_id), "role", "admin only")
        abort(404)
    user = support.get_user(user_id)
    if user is None:
        abort(404)
    form = StaffRoleForm(role=user.role) if request.method == "GET" else StaffRoleForm()
    if user.id == current_user.id:
        flash("You cannot change your own role: ask another admin.", "warning")
        return redirect(url_for("support.staff"))
    if not form.validate_on_submit():
        return render_template("support/staff_role.html", form=form, user=user), \
            422 if request.method == "POST" else 200
    old = user.role
    if old == "admin" and form.role.data != "admin" and not _another_admin_stays(user):
        flash(_only_admin(user, "they stay an admin"), "warning")
        return redirect(url_for("support.staff"))
    if form.role.data != old:
        user.role = form.role.data
        ended = sessions.revoke_all_for(user.id)
        audit.record("role_set", user_id=user.id, actor_id=_staff().id,
                     detail={"from": old, "to": user.role, "by": "support",
                             "sessions_ended": ended})
        db.session.commit()
        flash(f"{user.email} is now {user.role} (was {old}). Their sessions have ended, so the "
              "new role applies from their next sign-in.", "success")
    else:
        flash(f"{user.email} is already {old}. Nothing has changed.", "info")
    return redirect(url_for("support.staff"))
