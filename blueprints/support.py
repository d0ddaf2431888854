"""The support console: every sign-in attempt of a client (roles support and admin).

Anyone who is not staff gets a 404, as if the console did not exist. Every action is a POST
with a CSRF token and a ticked confirmation, and leaves an audit event naming the staff member.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from flask import (
    Blueprint, Response, abort, current_app, flash, redirect, render_template, request,
    session, stream_with_context, url_for,
)
from flask_login import current_user

from blueprints import kept_forms
from blueprints.safety import id_arg, no_store
from extensions import csrf, db
from forms import SupportActionForm
from models import User
from services import audit, clock, support
from services.signin import limits, sessions

bp = Blueprint("support", __name__, url_prefix="/support")
# The staff check must come before the CSRF check, so that others get a 404 and not a
# "form expired" page that would give the console away; staff_only() checks CSRF itself.
csrf.exempt(bp)


@dataclass(frozen=True)
class Action:
    """A change support can make to a client's account."""

    title: str
    run: Callable[[User, User], support.ActionResult]
    # Whether the action is offered for this account, and what it will do, in words.
    applies: Callable[[User], bool] = lambda user: True
    explain: Optional[Callable[[User], str]] = None
    # Why this staff member may not do it to this account all the same (say, switch off their
    # own), in words; None when they may.
    refused: Callable[[User, User], Optional[str]] = lambda staff, user: None
    # The confirmation's form for this account; its action_values() are given to `run`.
    form: Callable[[User], SupportActionForm] = lambda user: SupportActionForm()


ACTIONS = {
    # Offered only where they would change something (issue 11).
    "switch-to-email": Action("Switch to codes by email", support.switch_to_email,
                              applies=support.can_switch_to_email),
    "unlock": Action("Unlock the account", support.unlock, applies=support.is_locked),
    "end-sign-ins": Action("End pending sign-ins", support.end_pending,
                           applies=support.has_pending),
}


@bp.before_request
def staff_only():
    if not current_user.is_authenticated:
        ended = sessions.ended_user(session.get("sid"))
        if ended is not None and ended.is_staff:
            return _sign_in_again(ended)
        abort(404)
    if not current_user.is_staff:
        abort(404)
    if request.method == "POST" and current_app.config.get("WTF_CSRF_ENABLED", True):
        csrf.protect()


def _sign_in_again(staff: User):
    """A staff member back from a long call: the console's own words, not "Page not found".
    Only a browser holding that staff session's cookie is told the console exists."""
    if request.method != "POST":
        flash("Your session had ended. Sign in again to use the support console.", "warning")
        return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))
    kept = kept_forms.keep(staff.id)
    flash("Your session had ended, so nothing you sent was saved or done. Sign in again" +
          (", and what you typed will be filled in again." if kept else ", then do it again."),
          "warning")
    return redirect(url_for("auth.login", next=kept_forms.page_posted_from()))


@bp.after_request
def never_cache(response):
    return no_store(response)


def _tz() -> str:
    return current_app.config["PORTAL_TIMEZONE"]


def _client_or_404(user_id: int, action: Optional[str] = None) -> User:
    user = support.get_user(user_id)
    if user is not None and action is not None and not may_view(current_user, user):
        note_refused(user, action, "hidden")
    if user is None or not may_view(current_user, user):
        abort(404)
    return user


def note_refused(user: Optional[User], action: str, why: str) -> None:
    """Record a staff POST refused for want of the right, with a valid CSRF token (checked
    before any view): the console offers no such form, so it was made by hand or on a page
    gone stale. The answer stays as it was (403, or 404 where the account is not to exist)."""
    if request.method != "POST":
        return
    audit.record("staff_action_refused", user_id=user.id if user else None,
                 actor_id=current_user.id, outcome=why, detail={"action": action[:60]})
    db.session.commit()


def may_view(staff: User, user: User) -> bool:
    """An admin's timeline is for admins only: to support staff it does not exist (404)."""
    return user.role not in support.hidden_roles(staff)


def may_change(staff: User, user: User) -> bool:
    """Support may change clients' accounts; only an admin may change a staff account."""
    return staff.role == "admin" or user.role == "client"


@bp.route("")
def index():
    query = request.args.get("q", "")
    hidden = support.hidden_roles(current_user)
    result = support.find_clients(query, hidden)
    problems = support.recent_problems(_tz(), hidden)
    locks = support.recent_locks(hidden)
    return render_template(
        "support/index.html", q=query[:support.MAX_QUERY_LENGTH],
        result=result, problems=problems, locks=locks, days=support.PROBLEM_DAYS,
    )


def refusals(staff: User, user: User) -> dict[str, str]:
    """The actions that would apply to this account but this staff member may not run, and why."""
    # The refusal first: whether an action applies may cost a query (a waiting sign-in), and
    # the page asks that again for the actions it offers.
    reasons = {name: chosen.refused(staff, user) for name, chosen in ACTIONS.items()}
    return {name: reason for name, reason in reasons.items()
            if reason and ACTIONS[name].applies(user)}


@bp.route("/clients/<int:user_id>")
def client(user_id: int):
    user = _client_or_404(user_id)
    page = support.client_page(user, id_arg("before"), _tz(), start=id_arg("sign_in"))
    return render_template("support/client.html", page=page, actions=ACTIONS,
                           may_change=may_change(current_user, user), tz=_tz(),
                           refused=refusals(current_user, user),
                           account_findings=support.account_findings(user, _tz()))


@bp.route("/clients/<int:user_id>/export.csv")
def export(user_id: int):
    user = _client_or_404(user_id)
    if request.headers.get("Sec-Fetch-Site") in ("cross-site", "same-site"):
        # A link on another site (SameSite=Lax lets the cookie come with it): no download,
        # and no record of an export nobody asked for. The button is on the client's page.
        flash("To export this client's sign-ins, use the button on this page.", "info")
        return redirect(url_for("support.client", user_id=user.id), 303)
    stamp = clock.local(clock.now(), _tz()).strftime("%Y-%m-%d")
    headers = {"Content-Disposition":
               f'attachment; filename="sign-ins-client-{user.id}-{stamp}.csv"'}
    if request.method == "HEAD":
        # Flask answers HEAD with the GET view: headers only, no download, so no record.
        return Response(mimetype="text/csv", headers=headers)
    support.record_export(user, current_user)
    db.session.commit()
    return Response(stream_with_context(support.export_csv(user.id, _tz())),
                    mimetype="text/csv", headers=headers)


@bp.route("/clients/<int:user_id>/actions/<name>", methods=["GET", "POST"])
@limits.staff_changes
def action(user_id: int, name: str):
    chosen = ACTIONS.get(name)
    user = _client_or_404(user_id, name if chosen else None)
    if chosen is None:
        abort(404)
    refusal = chosen.refused(current_user, user)
    allowed = may_change(current_user, user) and refusal is None
    if not allowed:
        note_refused(user, name, "staff account" if refusal is None else "own account")
    # An action the page does not offer is not run either: a hand-made POST must not do
    # what the console would not (say, send an invitation to an account switched off).
    applies = chosen.applies(user)
    form = chosen.form(user)
    kept_forms.fill(form, current_user.id)  # typed before the staff member's session ended
    if allowed and applies and form.validate_on_submit():
        result = chosen.run(user, current_user._get_current_object(), **form.action_values())
        db.session.commit()
        flash(result.message, "success" if result.changed else "info")
        return redirect(url_for("support.client", user_id=user.id))
    return render_template(
        "support/confirm.html", form=form, action=chosen, name=name, user=user,
        allowed=allowed, refusal=refusal, locked=support.is_locked(user),
        pending=support.pending_sign_ins(user) if name == "end-sign-ins" else [],
        address_change=support.last_address_change(user) if name == "give-back" else None,
    ), _refusal_status(allowed, applies)


def _refusal_status(allowed: bool, applies: bool) -> int:
    """The status of the confirmation page when the action was not run."""
    if request.method == "GET":
        return 200
    if not allowed:
        return 403
    return 409 if not applies else 422


# Adding, importing and inviting clients, switching accounts off and on, staff roles.
from blueprints import support_accounts  # noqa: E402,F401  (adds routes and ACTIONS)
