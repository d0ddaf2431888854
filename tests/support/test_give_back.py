"""Giving an account back from the console: what `flask users recover` does, without anyone
on the server. The client whose address someone else changed calls the firm (the notice to
the old address tells them to); support checks who they are, then gives the account back to
the client's own address."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import AuthSession, Event, User
from tests.accounts.conftest import link_in, new_address_link, path_of
from tests.conftest import Browser, add_user, user_by_email
from tests.support.conftest import ADMIN, CLIENT, STAFF

INTRUDER = "intruder@example.net"


def _taken_over(app, sign_in, smtp, deliver, client_id) -> Browser:
    """Someone with the client's password signs in and moves the account to their address."""
    intruder = sign_in(CLIENT, b=Browser(app))
    link = new_address_link(intruder, smtp, deliver, INTRUDER)
    assert intruder.post(link, {}).status_code == 302
    assert user_by_email(app, INTRUDER).id == client_id
    return intruder


def test_support_gives_the_account_back_to_the_owners_address(app, client_id, sign_in, staff,
                                                              smtp, deliver):
    intruder = _taken_over(app, sign_in, smtp, deliver, client_id)
    url = f"/support/clients/{client_id}/actions/give-back"
    assert url in staff.text(f"/support/clients/{client_id}")

    page = staff.text(url)
    # Staff see which address it was moved from, masked as everywhere in the console.
    assert "Its sign-in address was changed" in page
    assert "c•••@example.com" in page and "i•••@example.net" in page
    assert f"Leave it empty to keep {INTRUDER}." in page
    assert "Only do this once you are sure who you are talking to" in page

    # Not ticked: nothing happens and the typed address stays in the box.
    answer = staff.post(url, {"owner_email": " Client@Example.com "})
    assert answer.status_code == 422
    assert "Tick the box to confirm." in answer.get_data(as_text=True)
    assert 'value="client@example.com"' in answer.get_data(as_text=True)
    assert user_by_email(app, INTRUDER).id == client_id

    count = len(smtp.messages)
    answer = staff.post(url, {"owner_email": "Client@Example.com", "confirm": "y"})
    assert answer.status_code == 302
    notice = staff.text(f"/support/clients/{client_id}")
    assert f"{INTRUDER}: now signs in with {CLIENT}; ended " in notice
    assert f"A link to choose a new password is on its way to {CLIENT}." in notice
    assert "Account given back" in notice

    with app.app_context():
        assert db.session.get(User, client_id).email == CLIENT
        assert db.session.scalar(select(func.count(AuthSession.id)).where(
            AuthSession.user_id == client_id, AuthSession.revoked_at.is_(None))) == 0
        event = db.session.scalar(select(Event).where(Event.type == "account_recovered"))
        assert event.actor_id == user_by_email(app, STAFF).id
        assert event.detail["by"] == "support" and event.detail["email_changed"]
    assert intruder.get("/portal").status_code == 302  # signed out

    deliver()
    smtp.wait_for(count + 1)
    mail = smtp.last_to(CLIENT)
    # Not "someone (we hope you) asked… you can ignore this": the client asked the firm, and
    # someone else may know the password.
    assert mail.subject.endswith("your account is yours again: choose a new password")
    assert "We have given your" in mail.text and "Someone (we hope you)" not in mail.text
    assert "Someone else may know your password" in mail.text
    reset = path_of(link_in(mail.text, "/password/reset/"))
    assert Browser(app).get(reset).status_code == 200


def test_an_address_that_cannot_be_the_owners_is_refused_in_words(app, client_id, staff):
    add_user(app, "someone.else@example.com")
    url = f"/support/clients/{client_id}/actions/give-back"
    for typed, said in [("someone.else@example.com",
                         "someone.else@example.com is another account&#39;s sign-in address."),
                        ("not an address", "Enter an email address like name@example.com")]:
        answer = staff.post(url, {"owner_email": typed, "confirm": "y"})
        assert answer.status_code == 422, typed
        assert said in answer.get_data(as_text=True), typed
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "account_recovered")) == 0


def test_left_empty_the_address_stays_and_the_rest_ends(app, client_id, staff, smtp, deliver):
    url = f"/support/clients/{client_id}/actions/give-back"
    assert "has not been changed lately" in staff.text(url)
    assert staff.post(url, {"owner_email": "", "confirm": "y"}).status_code == 302
    notice = staff.text(f"/support/clients/{client_id}")
    assert f"{CLIENT}: ended 0 sessions, every link and trusted device" in notice


def test_support_cannot_give_back_a_staff_account_nor_an_admin_their_own(app, staff, sign_in):
    admin_id = add_user(app, ADMIN, role="admin")
    url = f"/support/clients/{admin_id}/actions/give-back"
    assert staff.post(url, {"confirm": "y"}).status_code == 404  # support does not see admins
    admin = sign_in(ADMIN, b=Browser(app))
    answer = admin.post(url, {"confirm": "y"})
    assert answer.status_code == 403
    assert "you cannot give it back here" in answer.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "account_recovered")) == 0
