"""A new password and a new sign-in address, set at the same moment, never both happen.

The note sent when a change of address is asked for tells the owner that a new password
stops it. The link to the new address and the reset link each check, then use themselves
up, then end the other; used at once, on PostgreSQL each locked its own link and then waited
for the other's (the owner's new password holds the account's row, the address change waits
for it): a deadlock, and one of them a 500 page, perhaps the owner's.
Now each takes the account's row first, so they go one after the other and the second is
told plainly that its link no longer works.
"""

from __future__ import annotations

from sqlalchemy import select

from extensions import db
from models import User
from services.accounts import tokens
from services.signin import passwords
from tests.accounts.conftest import link_in, new_address_link, path_of
from tests.conftest import Browser, at_once, pause_in

CLIENT = "client@example.com"
THEIRS = "someone.else@example.com"
NEW = "plum tree by the river"


def test_a_reset_and_a_new_address_confirmed_at_once_do_not_both_happen(
        app, user, smtp, deliver, sign_in, monkeypatch):
    intruder = sign_in()
    confirm = new_address_link(intruder, smtp, deliver, THEIRS)
    owner = Browser(app)
    count = len(smtp.messages)
    assert owner.post("/password/forgot", {"email": CLIENT}).status_code == 200
    deliver()
    smtp.wait_for(count + 1)
    reset = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))

    posts = [(owner, reset, {"password": NEW, "confirm": NEW,
                             "csrf_token": owner.csrf_for(reset)}),
             (intruder, confirm, {"csrf_token": intruder.csrf_for(confirm)})]
    restore = pause_in(monkeypatch, tokens, "use", 2)
    answers = at_once(*(lambda b=b, path=path, data=data: b.client.post(path, data=data)
                        for b, path, data in posts))
    restore()
    statuses = [a.status_code for a in answers]
    assert 500 not in statuses, statuses
    with app.app_context():
        account = db.session.get(User, user)
        new_password = passwords.verify_password(account, NEW)
        moved = account.email == THEIRS
    assert new_password != moved, (statuses, new_password, moved)  # one of them, not both
    assert sorted(statuses) in ([302, 409], [302, 410]), statuses
