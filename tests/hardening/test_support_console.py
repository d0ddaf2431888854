"""Issue 11, point 11: the support console after a first real use.

On the old code a locked account was missing from "went wrong lately", a right password on a
locked account read "Code refused / locked", five wrong codes in one minute read "between
03:04 and 03:04", "Switch to codes by email" and "Unlock" were offered where they changed
nothing, and the CSV export left out the account's own events.
"""

from __future__ import annotations

import pytest

from tests.conftest import Browser, add_user, request_code, wrong_code

CLIENT, STAFF = "client@example.com", "staff@example.com"


@pytest.fixture
def staff(app, smtp, deliver, sign_in):
    add_user(app, STAFF, role="support")
    return sign_in(STAFF, Browser(app))


def _lock(app, email: str = CLIENT) -> Browser:
    b = Browser(app)
    for _ in range(10):
        b.post("/login", {"email": email, "password": "not the password"})
    return b


def test_a_locked_account_is_in_went_wrong_lately(app, user, staff):
    _lock(app)
    page = staff.text("/support")
    section = page.split('id="problems-title"', 1)[1]
    assert "Accounts locked" in section and CLIENT in section
    assert "Locked until" in section


def test_a_right_password_on_a_locked_account_says_so(app, user, staff):
    b = _lock(app)
    assert b.log_in().status_code == 429
    page = staff.text(f"/support/clients/{user}")
    assert "The password was right, but the account is locked, so no code was sent." in page
    assert "Code refused" not in page


def test_wrong_codes_in_one_minute_read_as_one_moment(app, user, staff, smtp, deliver):
    b = Browser(app)
    code = request_code(b, smtp, deliver)
    for _ in range(5):
        b.enter_code(wrong_code(code))
    page = staff.text(f"/support/clients/{user}")
    assert "5 wrong codes typed at " in page
    assert " and " not in page.split("5 wrong codes typed", 1)[1].split(",", 1)[0]


def test_actions_are_offered_only_where_they_change_something(app, staff):
    on_email = add_user(app, CLIENT)
    on_sms = add_user(app, "texts@example.com", channel="sms", phone="+447400123456")
    page = staff.text(f"/support/clients/{on_email}")
    assert "Switch to codes by email" not in page and "Unlock the account" not in page
    page = staff.text(f"/support/clients/{on_sms}")
    assert "Switch to codes by email" in page and "Unlock the account" not in page
    _lock(app)
    assert "Unlock the account" in staff.text(f"/support/clients/{on_email}")


def test_the_export_has_the_accounts_own_events(app, user, staff):
    _lock(app)
    csv_text = staff.get(f"/support/clients/{user}/export.csv").get_data(as_text=True)
    assert csv_text.count("Wrong password typed") == 10
    assert "Account locked" in csv_text
