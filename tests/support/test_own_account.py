"""An admin cannot switch off their own account from the console, nor leave the firm no admin."""

from __future__ import annotations

from flask import request
from sqlalchemy import select, update

from extensions import db
from models import Event, User
from services import clock, support
from tests.conftest import add_user, user_by_email
from tests.support.conftest import ADMIN

OTHER_ADMIN = "second.admin@example.com"
OWN_ACCOUNT = "This is your own account, so you cannot switch it off here."


def deactivate(path_of: str) -> str:
    return f"/support/clients/{path_of}/actions/deactivate"


def test_an_admin_is_not_offered_switching_off_their_own_account(app, admin, client_id):
    own = user_by_email(app, ADMIN).id
    page = admin.text(f"/support/clients/{own}")
    assert deactivate(own) not in page
    assert OWN_ACCOUNT in page and "ask another admin" in page
    # Other accounts, a client's or another admin's, still offer it, with no such note.
    other = add_user(app, OTHER_ADMIN, role="admin")
    for user_id in (client_id, other):
        page = admin.text(f"/support/clients/{user_id}")
        assert deactivate(user_id) in page and OWN_ACCOUNT not in page


def test_switching_off_your_own_account_is_refused(app, admin):
    own = user_by_email(app, ADMIN).id
    asked = admin.get(deactivate(own))
    assert asked.status_code == 200
    text = asked.get_data(as_text=True)
    assert OWN_ACCOUNT in text and 'name="confirm"' not in text
    answer = admin.post(deactivate(own), {"confirm": "y"})
    assert answer.status_code == 403
    assert OWN_ACCOUNT in answer.get_data(as_text=True)
    assert user_by_email(app, ADMIN).is_active
    assert admin.get("/support").status_code == 200  # still signed in, still an admin
    with app.app_context():
        assert db.session.scalar(select(Event.id).where(
            Event.type == "account_deactivated")) is None


def test_an_admin_can_switch_off_another_admin(app, admin):
    other = add_user(app, OTHER_ADMIN, role="admin")
    assert admin.post(deactivate(other), {"confirm": "y"}).status_code == 302
    assert not user_by_email(app, OTHER_ADMIN).is_active


def _meanwhile(monkeypatch, **change) -> None:
    """The other admin changes this admin's account just before this request looks up theirs."""
    get_user = support.get_user

    def changed_a_moment_ago(user_id):
        if request.method == "POST":  # not while the form is fetched for its CSRF token
            db.session.execute(update(User).where(User.email == ADMIN).values(**change))
            db.session.commit()
        return get_user(user_id)

    monkeypatch.setattr(support, "get_user", changed_a_moment_ago)


def _active_admins(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(User.email).where(
            User.role == "admin", User.deactivated_at.is_(None))).all()


def test_two_admins_switching_each_other_off_at_once_leave_one(app, admin, monkeypatch):
    other = add_user(app, OTHER_ADMIN, role="admin")
    _meanwhile(monkeypatch, deactivated_at=clock.now())
    answer = admin.post(deactivate(other), {"confirm": "y"})
    monkeypatch.undo()
    assert answer.status_code == 302
    assert _active_admins(app) == [OTHER_ADMIN]


def test_two_admins_making_each_other_support_at_once_leave_one(app, admin, monkeypatch):
    other = add_user(app, OTHER_ADMIN, role="admin")
    _meanwhile(monkeypatch, role="support")
    answer = admin.post(f"/support/staff/{other}", {"role": "support", "confirm": "y"},
                        form_page="/support/staff")
    monkeypatch.undo()
    assert answer.status_code == 302
    assert _active_admins(app) == [OTHER_ADMIN]
    with app.app_context():
        assert db.session.scalar(select(Event.id).where(Event.type == "role_set")) is None


def test_an_admin_can_make_another_admin_support(app, admin):
    other = add_user(app, OTHER_ADMIN, role="admin")
    answer = admin.post(f"/support/staff/{other}", {"role": "support", "confirm": "y"},
                        form_page="/support/staff")
    assert answer.status_code == 302
    assert user_by_email(app, OTHER_ADMIN).role == "support"


def test_support_staff_see_no_switch_on_their_own_page(app, staff):
    own = user_by_email(app, "support@example.com").id
    page = staff.text(f"/support/clients/{own}")
    assert deactivate(own) not in page and "only an admin can change it" in page
