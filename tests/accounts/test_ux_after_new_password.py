"""After a new password is set with a link from the mailbox, the sign-in page has the address
filled in, and says what comes next in words true for this client: a first sign-in is not
"as usual", and an authenticator app sends nothing."""

from __future__ import annotations

import re

import pytest

from tests.accounts.test_invitations import invitation_path, staff_browser
from tests.accounts.test_passwords import ask_for_reset, set_new
from tests.authenticators.conftest import set_up_app  # noqa: F401 - a fixture
from tests.conftest import Browser, add_user

NEW = "plum tree by the river"


def _flash(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _email_box(page: str) -> str:
    return re.search(r'<input[^>]*name="email"[^>]*>', page).group(0)


def test_an_invited_client_is_not_told_as_usual_and_finds_the_address_filled_in(
        app, smtp, deliver, sign_in):
    staff = staff_browser(app, sign_in)
    count = len(smtp.messages)
    staff.post("/support/clients/new", {"email": "anna@example.com", "name": "Anna",
                                        "phone": "", "channel": "email"})
    path = invitation_path(smtp, deliver, "anna@example.com", count + 1)
    anna = Browser(app)
    anna.text(path)
    assert anna.post(path, {"password": NEW, "confirm": NEW}).headers["Location"] == "/login"
    page = anna.text("/login")
    assert ("Your password is saved. Now sign in with your email address and new password; "
            "we will email you a sign-in code.") in _flash(page)
    assert 'value="anna@example.com"' in _email_box(page)
    # Once: a later visit to the page (another person at this computer) finds it empty.
    assert 'value=""' in _email_box(anna.text("/login"))
    assert anna.log_in("anna@example.com", NEW).headers["Location"] == "/login/code"


@pytest.mark.parametrize("channel, next_words", [
    ("email", "we will email you a sign-in code as usual."),
    ("sms", "we will text you a sign-in code as usual."),
])
def test_a_reset_says_how_the_code_will_come(app, smtp, deliver, channel,
                                             next_words):
    add_user(app, "client@example.com", channel=channel, phone="+447400123456")
    b = Browser(app)
    path = ask_for_reset(b, smtp, deliver)
    b.text(path)
    assert set_new(b, path).status_code == 302
    page = b.text("/login")
    assert next_words in _flash(page)
    assert 'value="client@example.com"' in _email_box(page)



def test_a_reset_by_a_client_with_an_authenticator_app_promises_no_code_sent(
        app, user, smtp, deliver, set_up_app):
    set_up_app()
    b = Browser(app)
    path = ask_for_reset(b, smtp, deliver)
    b.text(path)
    assert set_new(b, path).status_code == 302
    words = _flash(b.text("/login"))
    assert "then enter the code your authenticator app shows." in words
    assert "we will email you" not in words
