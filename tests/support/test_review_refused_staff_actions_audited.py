"""A staff POST refused for want of the right (support switching off a colleague or an admin,
or changing a role) is in the audit trail, naming who tried: the console never offers those
forms, so such a POST is hand-made or from a page gone stale, and either is worth knowing.
Before, the refusal answered 403 or 404 and left no trace at all."""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import Event, User
from tests.conftest import add_user, user_by_email
from tests.support.conftest import STAFF


def _refusals(app) -> list[Event]:
    with app.app_context():
        rows = db.session.scalars(select(Event).where(Event.type == "staff_action_refused")
                                  .order_by(Event.id)).all()
        db.session.expunge_all()
        return rows


def test_support_switching_off_a_colleague_is_refused_and_recorded(app, staff, admin):
    colleague = add_user(app, "colleague@example.com", role="support")
    answer = staff.post(f"/support/clients/{colleague}/actions/deactivate", {"confirm": "y"},
                        form_page="/support")
    assert answer.status_code == 403
    with app.app_context():
        assert db.session.get(User, colleague).is_active
    [event] = _refusals(app)
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == colleague
    assert event.ip and event.user_agent
    # Admins read it on the colleague's page.
    page = admin.text(f"/support/clients/{colleague}")
    assert "Staff action refused" in page and f"{STAFF} asked to" in page


def test_support_acting_on_an_admin_gets_404_and_is_recorded(app, staff):
    boss = add_user(app, "boss@example.com", role="admin")
    answer = staff.post(f"/support/clients/{boss}/actions/send-reset", {"confirm": "y"},
                        form_page="/support")
    assert answer.status_code == 404
    [event] = _refusals(app)
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == boss


def test_support_changing_a_role_gets_404_and_is_recorded(app, staff, client_id):
    answer = staff.post(f"/support/staff/{client_id}", {"role": "admin", "confirm": "y"},
                        form_page="/support")
    assert answer.status_code == 404
    with app.app_context():
        assert db.session.get(User, client_id).role == "client"
    [event] = _refusals(app)
    assert event.actor_id == user_by_email(app, STAFF).id and event.user_id == client_id


def test_what_support_may_do_and_plain_looking_leave_no_refusal(app, staff, client_id):
    staff.text(f"/support/clients/{client_id}/actions/deactivate")
    assert staff.post(f"/support/clients/{client_id}/actions/deactivate",
                      {"confirm": "y"}).status_code == 302
    assert staff.get("/support/staff").status_code == 404  # a look, not an action
    assert _refusals(app) == []


def test_a_refusal_without_a_valid_token_is_not_recorded(app, staff):
    colleague = add_user(app, "colleague@example.com", role="support")
    answer = staff.post(f"/support/clients/{colleague}/actions/deactivate", {"confirm": "y"},
                        csrf=False)
    assert answer.status_code == 400
    assert _refusals(app) == []
