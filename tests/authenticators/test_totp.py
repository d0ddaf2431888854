"""Authenticator apps (RFC 6238): set up on /account/security, then a channel that sends nothing."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import AuthSession, Event, TotpAuthenticator, User
from services import clock
from tests.authenticators.conftest import secret_from, totp_now
from tests.conftest import TEST_PASSWORD, Browser, user_by_email


def _log_in(b: Browser):
    response = b.log_in()
    assert response.status_code == 302
    return b.text("/login/code")


def test_set_up_shows_the_secret_and_a_qr_code_and_needs_one_code(app, sign_in, smtp, deliver):
    b = sign_in()
    page = b.text("/account/security")
    assert "Set up an authenticator app" in page and 'id="totp-secret"' not in page
    b.post("/account/security", {"form": "totp-start"})
    page = b.text("/account/security")
    assert "to your authenticator app: the steps are below" in page  # what the press did
    secret = secret_from(page)
    assert len(secret) == 32
    assert 'src="data:image/svg+xml' in page  # segno's QR code, drawn here, no outside service
    # Until the first code comes back, the app is not a way to sign in.
    assert user_by_email(app, "client@example.com").channel == "email"

    wrong = b.post("/account/security", {"form": "totp-confirm", "code": totp_now(secret, 5)})
    assert wrong.status_code == 422
    assert "clock seems to be about 2 minutes ahead" in wrong.get_data(as_text=True)
    assert user_by_email(app, "client@example.com").channel == "email"

    done = b.post("/account/security", {"code": totp_now(secret)})  # the field `code` alone
    assert done.status_code == 302
    assert user_by_email(app, "client@example.com").channel == "totp"
    page = b.text("/account/security")
    assert "Your codes come from your <strong>authenticator app</strong>" in page
    assert 'id="totp-secret"' not in page  # shown once, at setup
    deliver()
    assert "authenticator app was set up" in smtp.wait_for(2)[-1].text


def test_secret_is_encrypted_at_rest(app, set_up_app):
    secret = set_up_app()
    with app.app_context():
        stored = db.session.scalar(select(TotpAuthenticator.secret_encrypted))
    assert secret not in stored and secret.lower() not in stored.lower()


def test_sign_in_with_the_app_sends_nothing_and_takes_the_current_code(
        app, set_up_app, smtp, deliver):
    secret = set_up_app()
    b = Browser(app)
    deliver()
    before = len(smtp.messages)
    page = _log_in(b)
    assert "Open your <strong>authenticator app</strong>" in page
    assert "We have not sent you anything" in page
    assert "Send a code by email instead" in page
    deliver()
    assert len(smtp.messages) == before  # nothing was sent
    response = b.enter_code(totp_now(secret))
    assert response.status_code == 302 and response.location.endswith("/portal")
    with app.app_context():
        session_row = db.session.scalars(
            select(AuthSession).order_by(AuthSession.id.desc())).first()
        assert session_row.amr == ["pwd", "otp", "mfa"]


def test_a_code_is_never_accepted_twice_but_the_next_step_is(app, set_up_app):
    secret = set_up_app()
    code = totp_now(secret)
    first = Browser(app)
    _log_in(first)
    assert first.enter_code(code).status_code == 302
    second = Browser(app)
    _log_in(second)
    replay = second.enter_code(code)
    assert replay.status_code == 422
    assert "That code has already been used" in replay.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(Event.outcome).where(Event.type == "code_entry")
                                 .order_by(Event.id.desc()).limit(1)) == "replayed"
    clock.advance(timedelta(seconds=60))
    assert second.enter_code(totp_now(secret)).status_code == 302


def test_one_step_either_side_is_accepted_three_is_not(app, set_up_app):
    secret = set_up_app()
    clock.advance(timedelta(seconds=60))  # -1 below is then past the step the setup used
    b = Browser(app)
    _log_in(b)
    off = b.enter_code(totp_now(secret, -3))
    assert off.status_code == 422
    text = off.get_data(as_text=True)
    assert "phone's clock seems to be about 2 minutes behind" in text
    with app.app_context():
        entry = db.session.scalar(select(Event).where(Event.type == "code_entry")
                                  .order_by(Event.id.desc()).limit(1))
        assert entry.outcome == "wrong" and entry.detail["steps_off"] == -3
    assert b.enter_code(totp_now(secret, -1)).status_code == 302


def test_a_setup_left_unfinished_runs_out(app, sign_in):
    """A started setup's secret is shown for half an hour, then neither shown nor accepted."""
    b = sign_in()
    b.post("/account/security", {"form": "totp-start"})
    secret = secret_from(b.text("/account/security"))
    clock.advance(timedelta(minutes=20))
    assert secret_from(b.text("/account/security")) == secret  # (this visit keeps the session)
    clock.advance(timedelta(minutes=11))
    page = b.text("/account/security")
    assert 'id="totp-secret"' not in page and secret not in page
    assert "Set up an authenticator app" in page
    late = b.post("/account/security", {"form": "totp-confirm", "code": totp_now(secret)})
    assert late.status_code == 302
    assert "took longer than 30 minutes" in b.text("/account/security")
    assert user_by_email(app, "client@example.com").channel == "email"


def test_a_code_of_a_later_step_is_not_named_at_sign_in(app, set_up_app):
    """Someone guessing with the password must not learn that a guess will work later."""
    secret = set_up_app()
    b = Browser(app)
    _log_in(b)
    ahead = b.enter_code(totp_now(secret, 5))
    assert ahead.status_code == 422
    text = ahead.get_data(as_text=True)
    assert "ahead" not in text and "clock" not in text
    assert "That code is not right" in text
    with app.app_context():
        entry = db.session.scalar(select(Event).where(Event.type == "code_entry")
                                  .order_by(Event.id.desc()).limit(1))
        assert entry.outcome == "wrong" and entry.detail["steps_off"] == 5  # support sees it


def test_five_wrong_app_codes_end_the_sign_in(app, set_up_app):
    secret = set_up_app()
    b = Browser(app)
    _log_in(b)
    right = totp_now(secret)
    wrong = f"{(int(right) + 500_000) % 1_000_000:06d}"
    for _ in range(4):
        assert b.enter_code(wrong).status_code == 422
    stopped = b.enter_code(wrong)
    assert "too many wrong codes" in stopped.get_data(as_text=True)
    assert b.enter_code(right).status_code in (200, 422)  # the sign-in is over
    assert b.get("/portal").status_code == 302


def test_send_a_code_by_email_instead(app, set_up_app, smtp, deliver):
    set_up_app()
    b = Browser(app)
    _log_in(b)
    deliver()
    count = len(smtp.messages)
    response = b.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    assert response.status_code == 302
    deliver()
    mail = smtp.wait_for(count + 1)[-1]
    assert "We have sent a code to your email" in b.text("/login/code")
    assert b.enter_code(mail.code).status_code == 302


def test_a_code_by_email_instead_says_when_it_was_asked_for(app, set_up_app, smtp, deliver):
    """The email gave the time the sign-in began, minutes before the client asked for the
    email, so a client comparing times took the new code for an old one."""
    set_up_app()
    b = Browser(app)
    _log_in(b)
    clock.advance(timedelta(minutes=7))
    b.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    with app.app_context():
        asked_at = clock.hhmm(clock.now())
    deliver()
    mail = smtp.messages[-1]
    assert mail.subject.endswith(f"requested at {asked_at}")
    assert f"You asked for it at {asked_at}" in mail.text
    clock.advance(timedelta(minutes=1))
    b.post("/login/code/resend", {}, form_page="/login/code")  # the same code again
    deliver()
    again = smtp.messages[-1]
    assert (again.code, again.subject) == (mail.code, mail.subject)


def test_stopping_the_app_goes_back_to_email(app, set_up_app, smtp, deliver):
    set_up_app()
    b = Browser(app)
    _log_in(b)
    # signed in by email code instead, then stop using the app
    b.post("/login/code/resend", {"channel": "email"}, form_page="/login/code")
    deliver()
    b.enter_code(smtp.wait_for(3)[-1].code)
    assert b.post("/account/security", {"form": "totp-remove"}).status_code == 302
    assert user_by_email(app, "client@example.com").channel == "email"
    with app.app_context():
        assert db.session.scalar(select(TotpAuthenticator)) is None


def test_setting_up_after_ten_minutes_asks_for_the_password(app, sign_in):
    b = sign_in()
    clock.advance(timedelta(minutes=11))
    refused = b.post("/account/security", {"form": "totp-start"})
    assert refused.status_code == 302
    page = b.text("/account/security")
    assert 'id="totp-password-error"' in page and 'aria-invalid="true" autofocus' in page
    assert "Enter your password" in page
    wrong = b.post("/account/security", {"form": "totp-start", "password": "not it"})
    assert "That password is not right" in b.text(wrong.location)
    assert b.post("/account/security", {"form": "totp-start",
                                        "password": TEST_PASSWORD}).status_code == 302
    assert 'id="totp-secret"' in b.text("/account/security")


def test_app_channel_cannot_be_chosen_before_it_is_set_up(app, sign_in):
    b = sign_in()
    response = b.post("/account/security", {"channel": "totp", "phone": ""})
    assert response.status_code == 422
    assert "Set up your authenticator app" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(User.channel)) == "email"


def test_the_secret_is_shown_and_confirmed_only_in_the_session_that_began_the_setup(
        app, sign_in):
    """An older session of the same account (left open, or held by someone else) must not
    copy the second factor while the client sets it up elsewhere."""
    older = sign_in(b=Browser(app))
    clock.advance(timedelta(minutes=20))
    owner = sign_in(b=Browser(app))
    owner.post("/account/security", {"form": "totp-start"})
    secret = secret_from(owner.text("/account/security"))
    page = older.text("/account/security")
    assert 'id="totp-secret"' not in page and secret not in page
    assert "You began setting up an app in another browser" in page
    refused = older.post("/account/security", {"form": "totp-confirm", "code": totp_now(secret)})
    assert refused.status_code == 302
    assert "begun in another browser" in older.text("/account/security")
    with app.app_context():
        assert db.session.scalar(select(TotpAuthenticator.confirmed_at)) is None
    assert owner.post("/account/security", {"form": "totp-confirm",
                                            "code": totp_now(secret)}).status_code == 302
    assert user_by_email(app, "client@example.com").channel == "totp"


def test_stopping_an_unfinished_setup_needs_no_password(app, sign_in):
    b = sign_in()
    clock.advance(timedelta(minutes=8))
    b.post("/account/security", {"form": "totp-start"})
    clock.advance(timedelta(minutes=4))  # now 12 minutes after signing in
    stopped = b.post("/account/security", {"form": "totp-remove"})
    assert stopped.status_code == 302
    page = b.text("/account/security")
    assert "We have stopped setting up the authenticator app" in page
    assert 'id="totp-secret"' not in page
    with app.app_context():
        assert db.session.scalar(select(TotpAuthenticator)) is None
