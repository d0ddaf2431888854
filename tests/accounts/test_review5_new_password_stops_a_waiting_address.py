"""A new password stops a change of sign-in address that was waiting, and now says so.

It must stop it (SECURITY.md 3.12: whoever asked may not be the owner), but the client who
had asked for it themselves was not told: the page said only that the password changed,
and the link in the new mailbox then "does not work", with no reason they could see.
"""

from __future__ import annotations

from tests.conftest import TEST_PASSWORD

NEW = "plum tree by the river"
ADDRESS = "new.address@example.com"


def test_changing_the_password_says_the_waiting_address_change_was_stopped(app, user, sign_in):
    b = sign_in()
    assert b.post("/account/email", {"email": ADDRESS,
                                     "current_password": TEST_PASSWORD}).status_code == 302
    answer = b.post("/account/password", {"current_password": TEST_PASSWORD,
                                          "password": NEW, "confirm": NEW})
    assert answer.status_code == 302
    page = b.text("/account/password")
    assert f"change of your sign-in email address to {ADDRESS}" in page
    assert "stopped" in page


def test_nothing_is_said_of_an_address_change_when_none_was_waiting(app, user, sign_in):
    b = sign_in()
    b.post("/account/password", {"current_password": TEST_PASSWORD, "password": NEW,
                                 "confirm": NEW})
    assert "sign-in email address" not in b.text("/account/password")
