"""Support actions: a confirmation, CSRF, the change itself, and an audit event naming staff."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from extensions import db
from models import Delivery, Event, SignIn, User
from services import clock
from tests.conftest import add_user, user_by_email
from tests.support.conftest import CLIENT, STAFF, start


def events(app, type_: str) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == type_).order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def user(app, user_id: int) -> User:
    with app.app_context():
        row = db.session.get(User, user_id)
        db.session.expunge(row)
        return row


@pytest.fixture
def sms_client(app) -> int:
    return add_user(app, CLIENT, channel="sms", phone="+447400123456")


def test_switch_to_email_asks_first_then_switches_and_records_who(app, sms_client, staff):
    url = f"/support/clients/{sms_client}/actions/switch-to-email"
    page = staff.text(url)
    assert "From their next sign-in, codes will go by email" in page
    assert 'type="checkbox"' in page and "•••• ••• 456" in page

    # Not ticked: nothing changes, and the page says why.
    response = staff.post(url, {})
    assert response.status_code == 422
    assert "Tick the box to confirm." in response.get_data(as_text=True)
    assert user(app, sms_client).channel == "sms"
    assert not events(app, "support_channel_switched")

    response = staff.post(url, {"confirm": "y"})
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/support/clients/{sms_client}")
    assert user(app, sms_client).channel == "email"
    assert user(app, sms_client).phone == "+447400123456"  # kept, to switch back later
    [event] = events(app, "support_channel_switched")
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == sms_client
    assert event.detail["from"] == "sms"

    page = staff.text(f"/support/clients/{sms_client}")
    assert "will get codes by email from their next sign-in" in page  # the flash
    assert "Switched to codes by email" in page and f"By {STAFF}." in page


def test_switch_is_announced_to_the_client_by_email(app, sms_client, staff, smtp, deliver):
    staff.post(f"/support/clients/{sms_client}/actions/switch-to-email", {"confirm": "y"})
    deliver()
    notice = smtp.wait_for(1)[-1]
    assert notice.to == [user(app, sms_client).email]
    assert "support team set your sign-in codes to come by email" in notice.text


def test_switch_takes_effect_at_the_next_sign_in(app, sms_client, staff, smtp, deliver, browser):
    staff.post(f"/support/clients/{sms_client}/actions/switch-to-email", {"confirm": "y"})
    code = start(browser, smtp, deliver)
    assert browser.enter_code(code).status_code == 302


def test_actions_need_a_csrf_token(app, sms_client, staff):
    response = staff.post(f"/support/clients/{sms_client}/actions/switch-to-email",
                          {"confirm": "y"}, csrf=False)
    assert response.status_code == 400
    assert user(app, sms_client).channel == "sms"


def test_actions_are_posts_only(app, client_id, staff):
    response = staff.client.put(f"/support/clients/{client_id}/actions/unlock")
    assert response.status_code == 405


def test_switch_when_already_email_changes_nothing(app, client_id, staff):
    page = staff.text(f"/support/clients/{client_id}/actions/switch-to-email")
    assert "already gets codes by email" in page and 'type="checkbox"' not in page
    response = staff.post(f"/support/clients/{client_id}/actions/switch-to-email",
                          {"confirm": "y"}, form_page=f"/support/clients/{client_id}")
    # A POST of an action the page does not offer is refused with the same words.
    assert response.status_code == 409
    assert "already gets codes by email" in response.get_data(as_text=True)
    assert not events(app, "support_channel_switched")


def test_unlock_clears_the_lock_and_records_who(app, client_id, staff):
    with app.app_context():
        row = db.session.get(User, client_id)
        row.locked_until = clock.now() + timedelta(hours=1)
        row.lockout_count = 2
        db.session.commit()
    page = staff.text(f"/support/clients/{client_id}")
    assert "Locked</span> until" in page
    assert "is locked until" in staff.text(f"/support/clients/{client_id}/actions/unlock")

    assert staff.post(f"/support/clients/{client_id}/actions/unlock", {}).status_code == 422
    assert user(app, client_id).locked_until is not None

    response = staff.post(f"/support/clients/{client_id}/actions/unlock", {"confirm": "y"})
    assert response.status_code == 302
    unlocked = user(app, client_id)
    assert unlocked.locked_until is None and unlocked.lockout_count == 0
    [event] = events(app, "account_unlocked")
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == client_id
    assert "Account unlocked" in staff.text(f"/support/clients/{client_id}")


def test_end_pending_sign_ins(app, client_id, staff, smtp, deliver, browser):
    assert browser.log_in().status_code == 302  # its code is queued, not yet sent
    url = f"/support/clients/{client_id}/actions/end-sign-ins"
    page = staff.text(url)
    assert "waiting for a code" in page and "c•••@example.com" in page

    response = staff.post(url, {"confirm": "y"})
    assert response.status_code == 302
    with app.app_context():
        sign_in = db.session.scalar(select(SignIn).where(SignIn.user_id == client_id))
        assert sign_in.status == "cancelled" and sign_in.code_encrypted is None
        message = db.session.scalar(select(Delivery).where(Delivery.sign_in_id == sign_in.id))
        assert message.status == "cancelled"
    [event] = events(app, "signin_cancelled")
    assert event.actor_id == user_by_email(app, STAFF).id and event.sign_in_id == sign_in.id

    deliver()
    assert not [m for m in smtp.messages if CLIENT in m.to]  # the code never went out
    page = staff.text(f"/support/clients/{client_id}")
    assert f"Ended by {STAFF} from the support console." in page
    assert f"Ended by {STAFF} at" in page  # the diagnosis line
    assert "Ended 1 sign-in of client@example.com" in page  # the flash


def test_an_ended_sign_in_code_no_longer_works(app, client_id, staff, smtp, deliver, browser):
    code = start(browser, smtp, deliver)
    staff.post(f"/support/clients/{client_id}/actions/end-sign-ins", {"confirm": "y"})
    assert browser.enter_code(code).status_code == 422
    assert browser.get("/portal").status_code == 302


def test_end_pending_sign_ins_is_offered_only_while_one_waits(app, client_id, staff, browser):
    button = f'href="/support/clients/{client_id}/actions/end-sign-ins"'
    assert button not in staff.text(f"/support/clients/{client_id}")
    browser.log_in()
    assert button in staff.text(f"/support/clients/{client_id}")


def test_end_with_nothing_pending_says_so(app, client_id, staff):
    page = staff.text(f"/support/clients/{client_id}/actions/end-sign-ins")
    assert "has no sign-in waiting for a code" in page
    assert not events(app, "signin_cancelled")
