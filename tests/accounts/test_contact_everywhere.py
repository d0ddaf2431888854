"""Every "contact us" said to a client in words made in Python says how when PORTAL_CONTACT is
set, and keeps today's words when it is not; and the lockout email offers a new password as
the quicker way out exactly where a reset ends the pause (codes by email)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from extensions import db
from models import User
from services import clock, delivery
from services.accounts import lifecycle, tokens
from services.signin import limits
from tests.accounts.conftest import link_in, path_of
from tests.authenticators.conftest import SoftKey, add_passkey, sign_in_with
from tests.conftest import Browser, add_user, make_config, request_code, running_app

CLIENT = "client@example.com"
HOW = "call 020 7946 0000 or email help@smithco.co.uk"
NEW = "plum tree by the river"


@pytest.fixture(params=[None, HOW], ids=["contact-unset", "contact-set"])
def portal(request, tmp_path, smtp):
    """The app with PORTAL_CONTACT unset, then set; no client yet."""
    extra = {"PORTAL_CONTACT": request.param} if request.param else {}
    with running_app(make_config(tmp_path, smtp, **extra)) as application:
        application.contact_how = request.param
        yield application


def _contact_us(app, words: str = "contact us") -> str:
    """What the end of a sentence should say in this app."""
    return f"{words}: {app.contact_how}" if app.contact_how else words


def _deliver(app) -> None:
    with app.app_context():
        delivery.run_once()


def _signed_in(app, smtp) -> Browser:
    b = Browser(app)
    assert b.enter_code(request_code(b, smtp, lambda: _deliver(app))).status_code == 302
    return b


def _change_user(app, **fields) -> None:
    with app.app_context():
        user = db.session.scalar(db.select(User).where(User.email == CLIENT))
        for name, value in fields.items():
            setattr(user, name, value)
        db.session.commit()


# --- passkey refusals (blueprints/authenticators.py) -----------------------------------

def test_a_passkey_that_may_be_a_copy_says_how_to_contact_us(portal, smtp):
    add_user(portal, CLIENT)
    key = SoftKey(counter_starts=10)
    add_passkey(_signed_in(portal, smtp), key)
    assert sign_in_with(Browser(portal), key).status_code == 200  # count 11
    refused = sign_in_with(Browser(portal), key, count=5)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == (
        "We could not accept that passkey, to keep your account safe. Please sign in with "
        f"your email and password, and if this happens again, {_contact_us(portal)}.")


def test_a_passkey_of_a_switched_off_account_says_how_to_contact_us(portal, smtp):
    add_user(portal, CLIENT)
    key = SoftKey()
    add_passkey(_signed_in(portal, smtp), key)
    _change_user(portal, deactivated_at=clock.now())
    refused = sign_in_with(Browser(portal), key)
    assert refused.status_code == 403
    assert refused.get_json()["error"] == (
        f"This account cannot sign in at the moment. Please {_contact_us(portal)}.")


# --- the account's lock, flashed when a signed-in client is stopped (limits.lock_refusal) --

@pytest.mark.parametrize("channel", ["email", "sms"])
def test_the_lock_flashed_to_a_signed_in_client_says_how_to_contact_us(portal, smtp, channel):
    add_user(portal, CLIENT)
    b = _signed_in(portal, smtp)
    _change_user(portal, channel=channel, phone="+447400123456")
    clock.advance(timedelta(minutes=11))  # past the minutes in which no password is asked
    _change_user(portal, locked_until=clock.now() + timedelta(minutes=15))
    answer = b.post("/account/password", {"current_password": "anything",
                                          "password": NEW, "confirm": NEW})
    assert answer.status_code == 302 and answer.headers["Location"] == "/login"
    page = b.text("/login")
    assert "signing in to this account is paused until" in page
    if channel == "email":  # a new password set with the emailed link ends the pause
        assert ("To sign in sooner, set a new password with “Forgotten your password?”: the "
                "link we email you ends the pause. If you need help, please "
                f"{_contact_us(portal)}.") in page
    else:  # it would not: the texted code is the second factor the lock guards
        assert f"If you need to sign in sooner, please {_contact_us(portal)}." in page
        assert "ends the pause" not in page


# --- an expired invitation (lifecycle.refusal) ----------------------------------------

def test_an_expired_invitation_says_how_to_contact_us(portal):
    with portal.test_request_context():
        words = lifecycle.refusal("invitation", tokens.EXPIRED)
    assert words.message == (
        "Invitations work for 7 days. To get a new one, enter your email address on the "
        f"“Forgotten your password?” page, or {_contact_us(portal)}.")


# --- Your devices ------------------------------------------------------------------------

def test_your_devices_says_how_to_tell_us(portal, smtp):
    add_user(portal, CLIENT)
    page = " ".join(_signed_in(portal, smtp).text("/account/devices").split())
    if portal.contact_how:
        assert ('change your password</a> and tell us: call <a href="tel:02079460000">'
                '020 7946 0000</a> or email <a href="mailto:help@smithco.co.uk">'
                'help@smithco.co.uk</a>.</p>') in page
    else:
        assert "change your password</a> and tell us.</p>" in page


# --- the lockout email ---------------------------------------------------------------------

def _lockout_email(app, smtp):
    b = Browser(app)
    for attempt in range(limits.FAILURES_BEFORE_LOCK):
        answer = b.log_in(CLIENT, f"not my password {attempt}")
    assert answer.status_code == 429
    _deliver(app)
    mail = smtp.wait_for(1)[-1]
    assert "paused signing in" in mail.text
    return b, mail.text.replace("\r\n", "\n")


def _ends_with_how(app, text: str) -> None:
    if app.contact_how:
        assert text.rstrip().endswith(f"Contact us: {HOW}.")
    else:
        assert text.rstrip().endswith("we will never ask you for one.")
        assert "Contact us:" not in text


def test_the_lockout_email_offers_a_new_password_where_codes_come_by_email(portal, smtp):
    add_user(portal, CLIENT)
    b, text = _lockout_email(portal, smtp)
    assert ("or contact us and we can lift the pause sooner. Quicker still: set a new password "
            "at http://localhost/password/forgot and the pause ends as soon as it is set."
            ) in text
    _ends_with_how(portal, text)

    # And it does: the page it names sends a link, and the new password ends the pause.
    forgot = path_of(link_in(text, "/password/forgot"))
    count = len(smtp.messages)
    b.post(forgot, {"email": CLIENT})
    _deliver(portal)
    smtp.wait_for(count + 1)
    reset = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    assert b.post(reset, {"password": NEW, "confirm": NEW}).status_code == 302
    assert b.log_in(CLIENT, NEW).headers["Location"] == "/login/code"


def test_the_lockout_email_makes_no_such_promise_where_codes_come_by_text(portal, smtp):
    add_user(portal, CLIENT, channel="sms", phone="+447400123456")
    _, text = _lockout_email(portal, smtp)
    assert ("If it was you: wait until then and sign in again as usual, or contact us and we "
            "can lift the pause sooner.\n") in text
    assert "Quicker still" not in text and "the pause ends" not in text
    # Someone else may know the password: changing it is right whatever the pause does.
    assert ("If it was not you: someone may know your password. Please change it: set a new "
            "password at http://localhost/password/forgot, or contact us and we will help "
            "you.") in text
    _ends_with_how(portal, text)
