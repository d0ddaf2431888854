"""Asking to change the sign-in email tells the current address at once, and how to stop it:
whoever asked may have someone else's password and session. What the note says must be true."""

from __future__ import annotations

import re

from tests.accounts.conftest import link_in, path_of
from tests.conftest import TEST_PASSWORD, Browser, add_user, user_by_email

CLIENT = "client@example.com"
NEW = "new.address@example.com"
NEW_PASSWORD = "plum tree by the river"


def _ask(b: Browser, smtp, deliver, new: str = NEW):
    """Ask for `new`; returns the note to the current address and the mail to the new one."""
    count = len(smtp.messages)
    asked = b.post("/account/email", {"email": new, "current_password": TEST_PASSWORD})
    assert asked.status_code == 302
    deliver()
    smtp.wait_for(count + 2)
    return smtp.last_to(CLIENT), smtp.last_to(new)


def _link(mail) -> str:
    return path_of(link_in(mail.text, "/account/email/confirm/"))


def _without_times(text: str) -> str:
    return re.sub(r"\d\d:\d\d on \d+ \w+ \d{4}", "(time)", text)


def test_the_current_address_is_told_of_the_request_and_how_to_stop_it(app, user, smtp,
                                                                        deliver, sign_in):
    note, _ = _ask(sign_in(), smtp, deliver)
    assert "asked to change the email address you sign in with" in note.subject
    assert "n•••@example.com" in note.text and NEW not in note.text
    assert "/account/email/confirm/" not in note.text  # the link goes to the new address only
    assert "http://localhost/account/devices" in note.text
    assert "Sign out everywhere else" in note.text and "change your password" in note.text
    assert "remove any passkey you do not recognise" in note.text
    assert "http://localhost/password/forgot" in note.text
    assert note.html and "Sign out everywhere else" in note.html


def test_changing_the_password_stops_the_change_as_the_note_says(app, user, smtp, deliver,
                                                                 sign_in):
    intruder = sign_in(b=Browser(app))
    owner = sign_in(b=Browser(app))
    _, proof = _ask(intruder, smtp, deliver)
    changed = owner.post("/account/password", {"current_password": TEST_PASSWORD,
                                               "password": NEW_PASSWORD,
                                               "confirm": NEW_PASSWORD})
    assert changed.status_code == 302
    assert Browser(app).get(_link(proof)).status_code == 410
    assert user_by_email(app, NEW) is None


def test_a_new_password_from_the_forgotten_password_page_stops_it_too(app, user, smtp,
                                                                      deliver, sign_in):
    _, proof = _ask(sign_in(b=Browser(app)), smtp, deliver)
    count = len(smtp.messages)
    locked_out = Browser(app)
    locked_out.post("/password/forgot", {"email": CLIENT})
    deliver()
    smtp.wait_for(count + 1)
    reset = path_of(link_in(smtp.last_to(CLIENT).text, "/password/reset/"))
    answer = locked_out.post(reset, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert answer.status_code == 302
    assert Browser(app).get(_link(proof)).status_code == 410


def test_the_note_is_the_same_whether_or_not_the_new_address_has_an_account(
        app, user, smtp, deliver, sign_in):
    add_user(app, "taken@example.com")
    b = sign_in()
    free, _ = _ask(b, smtp, deliver, "tango@example.com")
    taken, in_use = _ask(b, smtp, deliver, "taken@example.com")
    assert "already has an account" in in_use.subject  # its owner got a note, not a link
    assert free.subject == taken.subject
    assert _without_times(free.text) == _without_times(taken.text)
