""""Sign out everywhere else" also stops the changes a session elsewhere began: a link that
would move the sign-in email, and a new mobile number waiting for its code."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import AccountToken, Event, PhoneProof
from tests.accounts.conftest import link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, user_by_email

CLIENT = "client@example.com"
INTRUDER = "someone.else@example.net"
DEVICES = "/account/devices"


def _sign_out_others(b: Browser):
    response = b.post("/account/devices/sign-out-others", form_page=DEVICES)
    assert response.status_code == 302
    return b.text(DEVICES)


def _email_change_link(b: Browser, smtp, deliver) -> str:
    """Ask, in this browser, to sign in with INTRUDER's address; the link that arrives there."""
    count = len(smtp.messages)
    asked = b.post("/account/email", {"email": INTRUDER, "current_password": TEST_PASSWORD})
    assert asked.status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    return path_of(link_in(smtp.last_to(INTRUDER).text, "/account/email/confirm/"))


def test_signing_out_everywhere_else_stops_a_waiting_email_change(app, user, smtp, deliver,
                                                                  sign_in):
    # Someone with the password and a session asks to move the account to their address.
    intruder = sign_in(b=Browser(app))
    owner = sign_in(b=Browser(app))
    link = _email_change_link(intruder, smtp, deliver)
    elsewhere = Browser(app)  # the link's page, opened with no session and left open
    csrf = elsewhere.csrf_for(link)
    page = owner.text(DEVICES)
    assert "Waiting: a change of your sign-in email address to" in page and INTRUDER in page

    page = _sign_out_others(owner)
    assert "signed out everywhere except here" in page
    assert "stopped the change of your sign-in email address" in page
    assert "Waiting: a change" not in page
    assert intruder.get("/portal").status_code == 302
    # The link needs no session: it must have died with the sessions.
    assert elsewhere.post(link, {"csrf_token": csrf}).status_code == 410
    assert Browser(app).get(link).status_code == 410
    assert user_by_email(app, INTRUDER) is None and user_by_email(app, CLIENT) is not None
    assert owner.get("/portal").status_code == 200
    with app.app_context():
        assert db.session.scalar(select(AccountToken.revoked_at)) is not None
        event = db.session.scalar(select(Event).where(Event.type == "signed_out_elsewhere"))
        assert event.detail["email_change_stopped"] is True


def test_a_client_alone_with_nothing_waiting_is_told_nothing_changed(app, user, sign_in):
    owner = sign_in()
    page = _sign_out_others(owner)
    assert "You were not signed in anywhere else. Nothing has changed." in page
    assert "stopped" not in page


def test_signing_out_everywhere_else_stops_a_new_number_waiting_for_its_code(
        app, user, smtp, deliver, sign_in, vonage):
    intruder = sign_in(b=Browser(app))
    owner = sign_in(b=Browser(app))
    asked = intruder.post("/account/security", {"channel": "sms", "phone": "07400 123456"})
    assert asked.status_code == 302
    assert "Confirm your new number" in owner.text("/account/security")

    page = _sign_out_others(owner)
    assert "stopped the check of a new mobile number" in page
    assert "Confirm your new number" not in owner.text("/account/security")
    with app.app_context():
        assert db.session.scalar(select(PhoneProof.status)) == "cancelled"
    deliver()
    assert vonage.received == []  # its text had not gone yet, and now never will
    assert user_by_email(app, CLIENT).phone is None
