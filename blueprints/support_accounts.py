"""Support console, accounts without a shell: add and import clients, invitations, staff roles.

These routes hang on the support blueprint (blueprints.support imports this module), so the
same rule holds: anyone who is not staff gets a 404, and every POST checks its CSRF token.
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import select

from blueprints.support import ACTIONS, Action, bp
from extensions import db
from forms import ImportClientsForm, NewClientForm, StaffRoleForm
from models import User
from services import audit, support
from services.signin import limits, sessions
from services.accounts import invitations, lifecycle


def _staff() -> User:
    return current_user._get_current_object()


def _is_admin() -> bool:
    return current_user.role == "admin"


# --- actions on one account (confirmed on support/confirm.html) ------------------------

def _deactivate(user: User, staff: User) -> support.ActionResult:
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
    lifecycle.send_reset(user, staff)
    return support.ActionResult(True, f"A link to set a new password is on its way to "
                                      f"{user.email}. It works for one hour.")


def _resend_invitation(user: User, staff: User) -> support.ActionResult:
    if invitations.resend(user, staff):
        return support.ActionResult(True, f"A new invitation is on its way to {user.email}. "
                                          "Earlier invitation links no longer work.")
    return support.ActionResult(False, f"{user.email} has already accepted their invitation.")


def _revoke_invitation(user: User, staff: User) -> support.ActionResult:
    if invitations.revoke(user, staff):
        return support.ActionResult(True, f"The invitation of {user.email} is withdrawn: its "
                                          "link no longer works.")
    return support.ActionResult(False, f"{user.email} has no invitation waiting.")


ACTIONS.update({
    "send-reset": Action(
        "Send a link to set a new password", _send_reset,
        applies=lambda u: u.is_active and u.has_password,
        explain=lambda u: f"We will email {u.email} a link to choose a new password. It works "
                          "once, for one hour. Their current password keeps working until they "
                          "use it."),
    "deactivate": Action(
        "Switch the account off", _deactivate, applies=lambda u: u.is_active and u.has_password,
        explain=lambda u: f"{u.email} will not be able to sign in or get codes. Every session "
                          "and sign-in of theirs ends now, and we email them to say so. You "
                          "can switch the account on again later."),
    "reactivate": Action(
        "Switch the account on again", _reactivate,
        applies=lambda u: not u.is_active and u.has_password,
        explain=lambda u: f"{u.email} will be able to sign in again with their password and a "
                          "code. We email them to say so."),
    "resend-invitation": Action(
        "Send the invitation again", _resend_invitation, applies=lambda u: not u.has_password,
        explain=lambda u: f"We will email {u.email} a new invitation link, good for 7 days. "
                          "Earlier links stop working."),
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
    if not _is_admin():
        form.role.data = "client"  # only an admin may invite staff
    if not form.validate_on_submit():
        return render_template("support/new_client.html", form=form, is_admin=_is_admin()), \
            422 if request.method == "POST" else 200
    candidate = invitations.check(invitations.Candidate(
        email=form.email.data, name=form.name.data or "", phone=form.phone.data or "",
        channel=form.channel.data, role=form.role.data if _is_admin() else "client"))
    if not candidate.ok:
        for problem in candidate.problems:
            target = form.phone if "mobile" in problem or "phone" in problem.lower() else (
                form.name if "name" in problem else form.email)
            target.errors.append(problem)
        return render_template("support/new_client.html", form=form, is_admin=_is_admin()), 422
    user = invitations.invite(candidate, actor=_staff())
    db.session.commit()
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
    text = _uploaded_text(form)
    if text is None:
        form.file.errors.append("The file is not text (save it from your spreadsheet as CSV, "
                                "UTF-8).")
        return render_template("support/import.html", form=form, preview=None), 422
    preview = invitations.read_csv(text)
    if form.confirmed.data == "yes" and preview.ok:
        invited = invitations.import_all(preview, _staff())
        audit.record("clients_imported", actor_id=_staff().id, detail={"count": len(invited)})
        db.session.commit()
        flash(f"Invited {len(invited)} client{'s' if len(invited) != 1 else ''}. Each gets an "
              "invitation email whose link works for 7 days.", "success")
        return redirect(url_for("support.invitations"))
    db.session.rollback()
    form.text.data = text
    return render_template("support/import.html", form=form, preview=preview), \
        200 if preview.ok else 422


def _uploaded_text(form: ImportClientsForm):
    upload = form.file.data
    if upload is not None and getattr(upload, "filename", ""):
        try:
            return upload.read().decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    return form.text.data or ""


@bp.route("/invitations", endpoint="invitations")
def invitations_page():
    return render_template("support/invitations.html", pending=invitations.pending())


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
