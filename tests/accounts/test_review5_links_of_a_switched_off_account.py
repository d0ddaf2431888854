"""A link of an account the firm has switched off (or an invitation withdrawn) says so.

Such a link was told "It may have been replaced by a newer one ... ask for a new link", with
a button to ask for one; but a switched-off account is sent no link, so the client asked,
waited, checked their junk folder and asked again, for nothing. The owner of the mailbox is
emailed when the account is switched off, so saying it tells the link's holder nothing new.
"""

from __future__ import annotations

from extensions import db
from models import User
from services.accounts import invitations, lifecycle
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser

CLIENT = "client@example.com"


def test_a_reset_link_of_a_switched_off_account_says_to_contact_the_firm(app, user, smtp,
                                                                        deliver):
    count = len(smtp.messages)
    assert Browser(app).post("/password/forgot", {"email": CLIENT}).status_code == 200
    deliver()
    smtp.wait_for(count + 1)
    path = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    with app.app_context():
        lifecycle.deactivate(db.session.get(User, user), None)
        db.session.commit()

    page = Browser(app).get(path)
    assert page.status_code == 410
    words = page.get_data(as_text=True)
    assert "switched off" in words and "contact us" in words
    assert "ask for a new link" not in words and 'href="/password/forgot"' not in words


def test_a_withdrawn_invitation_says_it_was_withdrawn(app, smtp, deliver):
    with app.app_context():
        invited = invitations.invite(invitations.check(invitations.Candidate(
            email="new.client@example.com")), actor=None)
        db.session.commit()
        invited_id = invited.id
    deliver()
    smtp.wait_for(1)
    path = path_of(link_in(smtp.last_to("new.client@example.com").text, "/welcome/"))
    with app.app_context():
        invitations.revoke(db.session.get(User, invited_id), None)
        db.session.commit()

    page = Browser(app).get(path)
    assert page.status_code == 410
    words = page.get_data(as_text=True)
    assert "withdrawn" in words and "contact us" in words
    assert 'href="/password/forgot"' not in words
