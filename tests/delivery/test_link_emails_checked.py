"""An email carrying a link (invitation, new password, new email address) is checked just
before it goes: once its link was withdrawn, replaced or used, or its account changed or was
switched off, it is cancelled, recorded as such, and never sent."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import Delivery, Event
from tests.accounts.conftest import link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, add_user, user_by_email

CLIENT = "client@example.com"
STAFF = "staff@example.com"
NEW_PASSWORD = "plum tree by the river"


def _staff(app, sign_in) -> Browser:
    add_user(app, STAFF, role="support")
    return sign_in(STAFF, b=Browser(app))


def _messages(app, kind: str) -> list[Delivery]:
    with app.app_context():
        rows = db.session.scalars(
            select(Delivery).where(Delivery.kind == kind).order_by(Delivery.id)).all()
        db.session.expunge_all()
        return rows


def _events(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_)).all()
        db.session.expunge_all()
        return rows


def _mail_to(smtp, address: str) -> list:
    return [m for m in smtp.messages if address in m.to]


def test_an_invitation_withdrawn_before_it_went_is_not_sent(app, smtp, deliver, sign_in):
    staff = _staff(app, sign_in)
    invited = staff.post("/support/clients/new", {"email": "new@example.com", "name": "Ann",
                                                  "channel": "email"})
    client_id = int(invited.headers["Location"].rsplit("/", 1)[1])
    staff.post(f"/support/clients/{client_id}/actions/revoke-invitation", {"confirm": "y"},
               form_page=f"/support/clients/{client_id}/actions/revoke-invitation")
    deliver()
    assert _mail_to(smtp, "new@example.com") == []
    [invitation] = _messages(app, "invitation")
    assert invitation.status == "cancelled" and invitation.sent_at is None
    assert invitation.last_error == "not sent: the account is switched off"
    assert invitation.code_encrypted is None  # the link's token is wiped with it
    [cancelled] = _events(app, "link_email_cancelled")
    assert cancelled.delivery_id == invitation.id and cancelled.user_id == client_id
    assert _events(app, "delivery_failed") == []  # cancelled, not a failure
    timeline = staff.text(f"/support/clients/{client_id}")
    assert "Link email not sent" in timeline
    assert "An invitation was not sent: the account is switched off." in timeline


def test_a_link_replaced_before_its_email_went_is_not_sent_but_the_newer_one_is(
        app, user, smtp, deliver, sign_in):
    staff = _staff(app, sign_in)
    client_id = user_by_email(app, CLIENT).id
    action = f"/support/clients/{client_id}/actions/send-reset"
    count = len(smtp.messages)
    for _ in range(2):
        assert staff.post(action, {"confirm": "y"}, form_page=action).status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    first, second = _messages(app, "reset")
    assert first.status == "cancelled"
    assert first.last_error == ("not sent: its link had been withdrawn or replaced by a newer "
                                "one")
    assert second.status == "sent"
    [reset] = _mail_to(smtp, CLIENT)[-1:]
    path = path_of(link_in(reset.text, "/password/reset/"))
    assert Browser(app).post(path, {"password": NEW_PASSWORD,
                                    "confirm": NEW_PASSWORD}).status_code == 302


def test_a_proof_link_is_not_sent_once_the_password_changed(app, user, smtp, deliver,
                                                            sign_in):
    b = sign_in()
    b.post("/account/email", {"email": "new.address@example.com",
                              "current_password": TEST_PASSWORD})
    b.post("/account/password", {"current_password": TEST_PASSWORD,
                                 "password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    deliver()
    assert _mail_to(smtp, "new.address@example.com") == []
    [proof] = _messages(app, "email_proof")
    assert proof.status == "cancelled"
    assert _events(app, "link_email_cancelled")[0].outcome == "revoked"


def test_a_link_that_still_works_is_sent(app, user, smtp, deliver, sign_in):
    b = sign_in()
    count = len(smtp.messages)
    b.post("/account/email", {"email": "new.address@example.com",
                              "current_password": TEST_PASSWORD})
    deliver()
    smtp.wait_for(count + 2)
    assert "/account/email/confirm/" in smtp.last_to("new.address@example.com").text
    assert [m.status for m in _messages(app, "email_proof")] == ["sent"]
    assert _events(app, "link_email_cancelled") == []
