"""Sign-in: the password, the code page, resend, live status, logout."""

from __future__ import annotations

import hmac
import re
import secrets
from datetime import datetime, timedelta
from typing import NamedTuple, Optional

from flask import (
    Blueprint, after_this_request, current_app, flash, redirect, render_template, request,
    session, url_for,
)
from flask_login import current_user, login_user, logout_user
from jinja2 import pass_eval_context
from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from blueprints import kept_forms
from blueprints.fast_path import FastPath
from blueprints.oidc import wants_fresh_sign_in
from blueprints.safety import CSP, HSTS, NO_STORE, SECURITY_HEADERS, id_arg, no_store, safe_next
from extensions import db
from forms import ChoiceForm, CodeForm, LoginForm, LogoutForm, ResendForm
from models import SignIn, User
from services import audit, clock, contact, delivery, emails
from services.signin import codes, limits, passwords, phone_proofs, sessions
from services.accounts import lifecycle
from services.authenticators import sign_ins, totp, trusted_devices
from services.masking import mask_destination
from services.support.timeline import device_words

bp = Blueprint("auth", __name__)

# How long "keep the code already sent, or send a new one?" may wait for an answer.
CHOICE_LIFETIME = timedelta(minutes=5)

GENERIC_LOGIN_ERROR = "The email address or password is not right. Check them and try again."


def deactivated_message() -> str:
    return ("This account has been switched off, so it cannot sign in. If you think this is a "
            f"mistake, please {contact.contact_us()}.")


@bp.after_request
def never_cache(response):
    return no_store(response)


# "Contact us" in every template, pages and messages alike, saying how when PORTAL_CONTACT is
# set (services/contact.py). On a web page its phone number and email address are links
# (`links=False` for an attribute's value).
@bp.app_template_global("contact_us")
@pass_eval_context
def contact_us_in_template(eval_context, words: str = "contact us", links: bool = True):
    said = contact.contact_us(words)
    return contact.linked(said) if eval_context.autoescape and links else said


@bp.app_template_global("contact_line")
@pass_eval_context
def contact_line_in_template(eval_context):
    said = contact.line()
    return contact.linked(said) if eval_context.autoescape else said


def browser_sign_in(*, locked: bool = False) -> Optional[SignIn]:
    """The sign-in this browser started (kept in its session cookie), if any; `locked`
    reads it afresh under its row lock, as codes.check_code needs it."""
    sign_in_id = session.get("signin_id")
    if not isinstance(sign_in_id, int):
        return None
    if locked:
        return codes.lock_sign_in(sign_in_id)
    # With its user: the code page asks the user's channel (one query, not two).
    return db.session.scalar(_SIGN_IN_WITH_USER, {"sign_in": sign_in_id})


# Built once, not as session.get's options each time: the code page asks it on every load.
_SIGN_IN_WITH_USER = (select(SignIn).options(joinedload(SignIn.user, innerjoin=True))
                      .where(SignIn.id == bindparam("sign_in")))


def _pending_choice() -> Optional[dict]:
    choice = session.get("choice")
    if not isinstance(choice, dict):
        return None
    started = datetime.fromisoformat(choice.get("at", "1970-01-01T00:00:00+00:00"))
    if clock.now() - started > CHOICE_LIFETIME:
        session.pop("choice", None)
        return None
    return choice


def _begin(user: User, next_url: Optional[str]):
    """Start a new sign-in for this browser and go to the code page."""
    if not user.is_active:
        # Reached only with the right password. A switched-off account gets no code.
        audit.record("code_refused", user_id=user.id, outcome="deactivated")
        db.session.commit()
        session.pop("choice", None)
        flash(deactivated_message(), "error")
        return render_template("auth/login.html", form=LoginForm(formdata=None),
                               waiting=None), 403
    refusal = limits.refuse_new_code(user, audit.client_ip())
    if refusal is not None:
        # Reached only with the right password, so it tells an attacker nothing new.
        db.session.commit()
        session.pop("choice", None)
        pause = cap = None
        if refusal.reason == "locked":
            pause = paused_words(refusal.until, account=True,
                                 reset_ends_it=lifecycle.reset_ends_a_lock(user))
        else:
            cap = _cap_words(refusal, _code_still_usable(user))
        return render_template("auth/login.html", form=LoginForm(formdata=None),
                               waiting=None, pause=pause, cap=cap), 429, refusal.headers
    sign_in = codes.start_sign_in(
        user, ip=audit.client_ip(), user_agent=audit.client_agent(), next_url=next_url,
    )
    kept = sign_in.id, user.id  # read before the commit, which would make them load again
    db.session.commit()
    session.pop("choice", None)
    _remember_sign_in(*kept)
    return redirect(url_for("auth.code"))


# The end of limits.code_send_refusal's words for an account's hourly cap: true only while
# this browser has a sign-in whose code can still come and be entered.
MAY_STILL_ARRIVE = " Your latest code may still arrive."


def _code_still_usable(user: User) -> Optional[SignIn]:
    """This browser's sign-in of `user`, if its code can still be entered: pending, not run
    out, and not a sign-in whose only message could not be sent."""
    waiting = browser_sign_in()
    if waiting is None or waiting.user_id != user.id or not waiting.is_pending \
            or clock.now() >= waiting.expires_at:
        return None
    if waiting.resend_count == 0 and delivery.failed_for(waiting):
        return None
    return waiting


def _cap_words(refusal: limits.Refusal, waiting: Optional[SignIn]) -> dict:
    """What the login page says when no more codes may be sent for now, and whether it offers
    the code already sent (then "Enter the code we already sent" goes to the code page)."""
    message = refusal.message if waiting is not None \
        else refusal.message.removesuffix(MAY_STILL_ARRIVE)
    return {"message": message, "waiting": waiting}


def _remember_sign_in(sign_in_id: int, user_id: int) -> None:
    """This browser's sign-in, and whose it is. The code post's and the resend's per-account
    request limits take the account from here (limits.account_key_from_sign_in): they run
    before the view, once for each window, so asking the database was two reads a post."""
    session["signin_id"] = sign_in_id
    session["signin_user"] = user_id


# Built once: every password post asks it.
_ACCOUNT = select(User).where(User.email == bindparam("email"))


@bp.route("/login", methods=["GET", "POST"])
@limits.password_checks
def login():
    next_url = safe_next(request.args.get("next"))
    if current_user.is_authenticated and not wants_fresh_sign_in(next_url):
        # Signed in already (e.g. sent here by a protected app): straight on to it. An app
        # that asked for a fresh sign-in gets one: the form, then a new session.
        return redirect(next_url or url_for("portal.home"))
    form = LoginForm()
    kept_forms.fill(form)
    if "login_email" in session and request.method == "GET":
        # Just set a password with a link from the mailbox: one box fewer to fill in.
        form.email.data = session.pop("login_email")
    waiting = browser_sign_in()
    if waiting is not None and (not waiting.is_pending or codes.expire_if_due(waiting)):
        db.session.commit()
        waiting = None

    if "action" in request.form:
        return _answer_choice(next_url)

    if form.validate_on_submit():
        # Addresses are stored in one spelling (services.emails.canonical), so the unique
        # index finds the account however its letters were typed.
        email = emails.canonical(form.email.data)
        user = db.session.scalar(_ACCOUNT, {"email": email})
        if not passwords.verify_password(user, form.password.data):
            # Counted and locked alike whether or not the address has an account, so the
            # page can say "paused" at the moment it happens without telling which it is.
            paused = limits.wrong_password(user, email)
            db.session.commit()
            if paused is not None:
                return paused_page(form, waiting, paused)
            flash(GENERIC_LOGIN_ERROR, "error")
            return render_template("auth/login.html", form=form, waiting=waiting), 200
        # The password's event, the sign-in's and its message's go in one statement at the
        # commit (the caps read only earlier sign-ins' events).
        with audit.written_together():
            audit.record("password_ok", user_id=user.id, outcome="ok")
            trusted = _trusted_device_sign_in(user, next_url)
            if trusted is not None:
                return trusted
            elsewhere = codes.pending_sign_in_of(user)
            if elsewhere is not None and elsewhere.id != session.get("signin_id"):
                # A code is already on its way to this user from another window or browser.
                db.session.commit()
                session["choice"] = {"user_id": user.id, "sign_in_id": elsewhere.id,
                                     "at": clock.now().isoformat(), "next": next_url,
                                     "nonce": secrets.token_urlsafe(16)}
                return redirect(url_for("auth.login"))
            return _begin(user, next_url)

    choice = _pending_choice()
    if choice is not None and request.method == "GET":
        elsewhere = db.session.get(SignIn, choice["sign_in_id"])
        if elsewhere is not None and elsewhere.is_pending:
            return render_template("auth/choice.html", form=ChoiceForm(nonce=choice["nonce"]),
                                   elsewhere=elsewhere)
        session.pop("choice", None)
    return render_template("auth/login.html", form=form, waiting=waiting)


def _trusted_device_sign_in(user: User, next_url: Optional[str]):
    """The right password on a browser marked "don't ask for a code": straight in."""
    if user.is_locked(clock.now()) or not user.is_active:
        return None  # _begin explains the lock, or that the account is switched off
    name = trusted_devices.cookie_name()
    seen = trusted_devices.recognise(user, request.cookies.get(name))
    if not seen.ok:
        if seen.reason not in ("none", "other_account"):  # the mark is no use to anyone
            @after_this_request
            def drop_mark(response):
                response.delete_cookie(name, path="/", httponly=True, samesite="Lax",
                                       secure=current_app.config["SESSION_COOKIE_SECURE"])
                return response
        return None
    sign_in = sign_ins.record_codeless(user, sign_ins.DEVICE,
                                       device_words(audit.client_agent()), next_url=next_url)
    audit.record("trusted_device_used", user_id=user.id, sign_in_id=sign_in.id, outcome="ok",
                 detail={"device_id": seen.device.id,
                         "trusted_since": seen.device.created_at.isoformat()})
    return _finish_sign_in(sign_in, amr=trusted_devices.AMR)


def paused_words(until: datetime, *, account: bool, reset_ends_it: bool = False) -> dict:
    """What templates/auth/_paused.html says: until when, how long, whether it is the
    account's own lock (told only to the right password) or the pause of an email address, and
    (for the account's own) whether a new password by email would end it."""
    return {"until": until, "account": account, "reset_ends_it": reset_ends_it,
            "wait": limits.wait_in_words((until - clock.now()).total_seconds())}


def paused_page(form: LoginForm, waiting: Optional[SignIn], until: datetime):
    """The sign-in page saying that this email address is paused, and until when: the same
    words whether or not it has an account."""
    wait = max(1, int((until - clock.now()).total_seconds() + 0.999))
    return (render_template("auth/login.html", form=form, waiting=waiting,
                            pause=paused_words(until, account=False)), 429,
            {"Retry-After": str(wait)})


def _answer_choice(next_url: Optional[str]):
    """The answer to "keep the code already sent, or send a new one?"."""
    asked = session.get("choice")
    # Where the client was going (an app's /login?next=...), kept when the question expired.
    again = url_for("auth.login", next=safe_next(asked.get("next"))
                    if isinstance(asked, dict) else None)
    choice = _pending_choice()
    form = ChoiceForm()
    if choice is None:
        flash("That question had expired. Please enter your email and password again.", "warning")
        return redirect(again)
    if not form.validate_on_submit():
        elsewhere = db.session.get(SignIn, choice["sign_in_id"])
        form.nonce.data = choice.get("nonce")
        return render_template("auth/choice.html", form=form, elsewhere=elsewhere)
    user = db.session.get(User, choice["user_id"])
    session.pop("choice", None)
    asked_at = datetime.fromisoformat(choice["at"])
    if user is not None and user.password_changed_at is not None \
            and clock.as_utc(user.password_changed_at) > asked_at:
        # The password that earned the question has been changed since (a reset, say): it
        # starts nothing now.
        flash("That question had expired. Please enter your email and password again.",
              "warning")
        return redirect(again)
    # One answer per question: the form must carry this question's nonce, and the server
    # must not have seen an answer to it already (a replayed cookie brings the question back).
    if user is None or not hmac.compare_digest(str(form.nonce.data or ""),
                                               str(choice.get("nonce") or "")) \
            or not codes.answer_question_once(user, choice["sign_in_id"], asked_at,
                                              form.action.data):
        db.session.commit()
        flash("That question had already been answered. Please enter your email and "
              "password again.", "warning")
        return redirect(url_for("auth.login"))
    elsewhere = db.session.get(SignIn, choice["sign_in_id"])
    if form.action.data == "keep" and elsewhere is not None and elsewhere.is_pending \
            and not codes.expire_if_due(elsewhere):
        audit.record("signin_kept", user_id=user.id, sign_in_id=elsewhere.id)
        kept = elsewhere.id, elsewhere.user_id  # read before the commit, as in _begin
        db.session.commit()
        session.pop("choice", None)
        _remember_sign_in(*kept)
        return redirect(url_for("auth.code"))
    return _begin(user, choice.get("next") or next_url)


def delivery_words(latest) -> tuple[str, str, Optional[str]]:
    """delivery.describe for the client, on the code page and in its status answer alike, and
    what holds the message back that the client is told of (delivery.held_back_by). An
    email that could not be delivered is said plainly: the mail server's reason ("refused the
    address (550)") is for support, who read it in the timeline. A text's reasons are written
    for clients ("the phone was switched off or out of signal") and stay, as does a full
    mailbox's ("your email provider said your mailbox was full"): the client can make room.
    So does an email a mail server's security rules turned away ("our email was not accepted
    on its way to you"): the client must not think their address is wrong."""
    state, text = delivery.describe(latest)
    held_by = delivery.held_back_by(latest)
    if state == "failed" and latest.channel == "email" and held_by is None:
        return state, "Not delivered.", None
    return state, text, held_by


def _account_pause(sign_in: SignIn) -> Optional[datetime]:
    """Until when the account of a sign-in stopped by its lock is paused, if it still is.
    This browser gave the right password, so it may be told."""
    if sign_in.status != "locked":
        return None
    lock = limits.lock_refusal(sign_in.user)
    return lock.until if lock is not None else None


def _code_page(sign_in: Optional[SignIn], form: CodeForm, *, problem: Optional[dict] = None,
               status: int = 200):
    latest = delivery.latest_for(sign_in) if sign_in is not None else None
    state, state_text, held_by = delivery_words(latest)
    paused_until = _account_pause(sign_in) if sign_in is not None else None
    reset_ends_pause = sign_in is not None and lifecycle.reset_ends_a_lock(sign_in.user)
    return render_template(
        "auth/code.html", form=form, sign_in=sign_in, problem=problem,
        pause=paused_words(paused_until, account=True, reset_ends_it=reset_ends_pause)
        if paused_until else None, reset_ends_pause=reset_ends_pause,
        delivery=latest, delivery_state=state, delivery_text=state_text,
        mailbox_full=held_by == delivery.HELD_BY_FULL_MAILBOX,
        refused_by_policy=held_by == delivery.HELD_BY_POLICY,
        resend_form=ResendForm(), resend_wait=codes.resend_wait(sign_in) if sign_in else 0,
        resends_left=codes.MAX_RESENDS - sign_in.resend_count if sign_in else 0,
        newer=codes.newest_successor(sign_in) if sign_in is not None
        and sign_in.status == "superseded" else None,
        cancelled_because=codes.cancelled_because(sign_in) if sign_in is not None
        and sign_in.status == "cancelled" else None,
        sms_unavailable=sign_in is not None and sign_in.channel == "email"
        and sign_in.user.channel == "sms" and not delivery.sms_offered(),
        # Where the client was going (an app sent them to /login?next=...): signing in again
        # from this page goes there too, as this sign-in would have.
        again_next=safe_next(sign_in.next_url) if sign_in is not None else None,
    ), status


@bp.route("/login/code", methods=["GET", "POST"])
@limits.code_entries
def code():
    form = CodeForm()
    judge = request.method == "POST" and form.validate_on_submit()
    # A code to judge: read the sign-in under its lock at once (one query, not two).
    sign_in = browser_sign_in(locked=judge)
    if sign_in is None:
        if request.method == "POST":
            flash("There is no sign-in waiting for a code in this browser. "
                  "Please enter your email and password first.", "warning")
        return redirect(url_for("auth.login"))
    locked = judge
    if sign_in.is_pending and codes.expire_if_due(sign_in):
        db.session.commit()  # only when it changed: a commit makes every row load again
        locked = False  # and lets go of the lock: check_code takes it again
    if not judge:
        return _code_page(sign_in, form, status=200 if request.method == "GET" else 422)

    with audit.written_together():  # written at the commit, or before the lockout reads
        check = codes.check_code(sign_in, form.code.data, locked=locked)
        if check.outcome == codes.ACCEPTED:
            # One commit: the code used up, the session opened (and this device marked).
            return _finish_sign_in(sign_in, remember=form.remember.data is True)
    if check.outcome in (codes.WRONG, codes.LOCKED):
        limits.note_failure(sign_in.user)
    db.session.commit()
    lock = limits.lock_refusal(sign_in.user)
    problem = {
        "outcome": check.outcome, "tries_left": check.tries_left,
        "earlier": check.earlier, "newer": check.newer,
        "drift": totp.drift_hint_at_sign_in(check.steps_off),
    }
    form.code.data = ""
    if lock is not None:
        page, status = _code_page(sign_in, form, problem=problem, status=429)
        return page, status, lock.headers
    return _code_page(sign_in, form, problem=problem, status=422)


def _finish_sign_in(sign_in: SignIn, *, amr: Optional[list[str]] = None,
                    remember: bool = False):
    """The code was right: a fresh session (new token, new cookie), then the portal."""
    user = sign_in.user
    next_url = safe_next(sign_in.next_url)
    kept = kept_forms.carry_over(user.id, next_url)
    sessions.revoke(session.get("sid"))  # a session this browser had is replaced, not left
    session.clear()
    kept_forms.restore(kept)
    token = sessions.open_session(
        user, sign_in.id, amr=amr or sessions.CODE_AMR.get(sign_in.channel, ["pwd", "mfa"]))
    login_user(user)
    session["sid"] = token
    audit.record("signed_in", user_id=user.id, sign_in_id=sign_in.id)
    device_token = None
    if remember:
        device_token = trusted_devices.mark(user, sign_in.id)
        # Told like any other change to how the account signs in: someone who relayed a code
        # could tick the box too, and would then need only the password for 30 days.
        phone_proofs.notify(user, trusted_devices.notice(audit.client_agent()))
    db.session.commit()
    response = redirect(next_url or url_for("portal.home"))
    if device_token:
        trusted_devices.set_cookie(response, device_token)
    return response


@bp.route("/login/code/resend", methods=["POST"])
@limits.resends
def resend():
    sign_in = browser_sign_in()
    form = ResendForm()
    if sign_in is None or not form.validate_on_submit():
        flash("There is no sign-in waiting for a code in this browser. "
              "Please enter your email and password first.", "warning")
        return redirect(url_for("auth.login"))
    channel = form.channel.data if form.channel.data in ("email",) else None
    refusal = limits.code_send_refusal(sign_in.user, audit.client_ip()) \
        if sign_in.is_pending else None
    if refusal is not None:
        flash(refusal.message, "warning")
        page, status = _code_page(sign_in, CodeForm(formdata=None), status=429)
        return page, status, refusal.headers
    from_app = sign_in.channel == "totp"
    result = codes.resend_code(sign_in, channel=channel)
    db.session.commit()
    if result.ok and from_app:
        flash("We have sent a code to your email. Enter that code instead of the one from "
              "your app.", "success")
    elif result.ok:
        where = "your email" if sign_in.channel == "email" else "your phone"
        left = result.resends_left
        sent = (f"We have sent the same code to {where} instead." if result.switched
                else f"We have sent the same code to {where} again.")
        flash(f"{sent} It is still the code sent at {clock.hhmm(sign_in.created_at)}. "
              + (f"You can ask {left} more time{'s' if left != 1 else ''}." if left
                 else "That was the last resend for this sign-in."), "success")
    elif result.reason == "cooldown" and delivery.failed_for(sign_in):
        flash(f"Your last message could not be sent. We send a code at most every "
              f"{codes.RESEND_COOLDOWN.seconds} seconds: you can ask again in "
              f"{result.wait_seconds} seconds.", "warning")
    elif result.reason == "cooldown":
        flash(f"Please wait {result.wait_seconds} seconds before asking again: "
              "the code may already be on its way.", "warning")
    elif result.reason == "limit":
        flash("The code has been sent 3 more times already, which is the most we send. "
              "If it still has not come, sign in again to get a new code.", "warning")
    else:
        flash("This sign-in has ended, so its code cannot be sent again. "
              "Please sign in again.", "warning")
    return redirect(url_for("auth.code"))


@bp.route("/login/code/status")
def status():
    """The pending sign-in as JSON, for the code page's live status and the tab guard."""
    current = browser_sign_in()
    asked = id_arg("sign_in")
    sign_in = current
    if asked is not None and current is not None and asked != current.id:
        other = db.session.get(SignIn, asked)
        if other is not None and other.user_id == current.user_id:
            sign_in = other
    if sign_in is None:
        # The code page of a finished sign-in can then say "you signed in in another tab".
        return {"status": "none", "signed_in": current_user.is_authenticated}, 404
    if sign_in.is_pending and codes.expire_if_due(sign_in):
        db.session.commit()  # only when it changed: a commit makes every row load again
    latest = delivery.latest_for(sign_in)
    newer = codes.newest_successor(sign_in) if sign_in.status == "superseded" else None
    return status_document(sign_in, latest, current_id=current.id if current else None,
                           newer=newer, tz=current_app.config["PORTAL_TIMEZONE"],
                           paused_until=_account_pause(sign_in))


def status_document(sign_in, latest, *, current_id: Optional[int], newer: Optional[SignIn],
                    tz: str, paused_until: Optional[datetime] = None) -> dict:
    """The status answer. `sign_in` and its newest message `latest` are models (the route) or
    the columns of codes.STATUS_LOOKUP (StatusFastPath); only what both have is read.
    `paused_until`: the account of a sign-in its lock stopped is paused until then (the page
    then offers a new password, not "Sign in again")."""

    state, state_text, held_by = delivery_words(latest)
    pending = sign_in.status == "pending"
    return {
        "sign_in": sign_in.id,
        "current_sign_in": current_id,
        "status": sign_in.status,
        "channel": sign_in.channel,
        "destination": _mask(sign_in),
        "sent_at": sign_in.created_at.isoformat(),
        "sent_at_local": clock.hhmm(sign_in.created_at, tz),
        "expires_at": sign_in.expires_at.isoformat(),
        "expires_at_local": clock.hhmm(sign_in.expires_at, tz),
        "delivery": {
            "state": state, "text": state_text,
            "at": (latest.sent_at or latest.created_at).isoformat() if latest else None,
            "attempts": latest.attempts if latest else 0,
            # The code page's script shows what to do about a full mailbox by these, and what
            # to say when a mail server's security rules turned it away (not the client's
            # address): the failure notice's data-if-full and data-if-policy parts.
            "mailbox_full": held_by == delivery.HELD_BY_FULL_MAILBOX,
            "refused_by_policy": held_by == delivery.HELD_BY_POLICY,
        },
        "superseded": sign_in.status == "superseded",
        "superseded_at": sign_in.ended_at.isoformat() if newer else None,
        "newer": {
            "sign_in": newer.id, "sent_at_local": clock.hhmm(newer.created_at, tz),
            "channel": newer.channel, "destination": _mask(newer),
            "here": current_id == newer.id,
        } if newer else None,
        "resend_wait": codes.resend_wait(sign_in) if pending else None,
        "resends_left": codes.MAX_RESENDS - sign_in.resend_count,
        "paused_until_local": clock.hhmm(paused_until, tz) if paused_until else None,
    }


class _Message(NamedTuple):
    """A message's columns from codes.STATUS_LOOKUP, as delivery.describe reads a Delivery."""

    status: str
    channel: str
    attempts: int
    last_error: Optional[str]
    created_at: datetime
    sent_at: Optional[datetime]


class StatusFastPath(FastPath):
    """The poll's plain case answered in front of Flask (blueprints/fast_path.py): this
    browser's own sign-in, pending and not yet due to expire. Anything else goes on to the
    route above: no sign-in, one ended or due its expiry, another sign-in asked by id, a
    session Flask would sign again (permanent), a bad signature, an untrusted Host."""

    PATH = "/login/code/status"
    ASKED = re.compile(r"sign_in=([1-9][0-9]{0,9})")  # what the code page's script asks

    def answer(self, environ):
        data = self.session(environ)
        if data is None or "_permanent" in data or "_remember" in data:
            return None
        sign_in_id = data.get("signin_id")
        if not isinstance(sign_in_id, int):
            return None
        query = environ.get("QUERY_STRING", "")
        if query:
            asked = self.ASKED.fullmatch(query)
            if asked is None or int(asked.group(1)) != sign_in_id:
                return None
        with self.connect() as connection:
            row = connection.execute(codes.STATUS_LOOKUP, {"sign_in_id": sign_in_id}).first()
        if row is None or row.status != "pending" or clock.now() >= row.expires_at:
            return None
        latest = None if row.message_id is None else _Message(
            row.message_status, row.message_channel, row.message_attempts,
            row.message_last_error, row.message_created_at, row.message_sent_at)
        response = self.app.json.response(status_document(
            row, latest, current_id=sign_in_id, newer=None,
            tz=self.app.config["PORTAL_TIMEZONE"]))
        # The headers app.py's security_headers and this blueprint's never_cache give the route.
        headers = [("Content-Type", response.content_type), *NO_STORE,
                   ("Content-Security-Policy", self.app.config.get("CONTENT_SECURITY_POLICY",
                                                                   CSP)),
                   *SECURITY_HEADERS]
        if environ.get("wsgi.url_scheme") == "https":
            headers.append(HSTS)
        headers.append(("Vary", "Cookie"))  # Flask's, as the route read the session
        return "200 OK", headers, response.get_data()


def _mask(sign_in: SignIn) -> str:
    return mask_destination(sign_in.channel, sign_in.destination)


def end_session() -> None:
    """End this browser's session, here and on the server (logout, even with a stale form)."""
    if current_user.is_authenticated:
        audit.record("logout", user_id=current_user.id)
    sessions.revoke(session.get("sid"))
    db.session.commit()
    logout_user()
    session.clear()


@bp.route("/logout", methods=["POST"])
def logout():
    form = LogoutForm()
    if form.validate_on_submit():
        end_session()
        flash("You have logged out.", "success")
    return redirect(url_for("auth.login"))
