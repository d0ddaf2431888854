"""A role change is the one staff action that widens what someone may do; the console (the
trail's only reader) said "Role changed" and who, but not from what to what, though the event
holds both."""

from __future__ import annotations

import re

from tests.conftest import add_user
from tests.support.conftest import ADMIN


def test_a_role_change_says_from_what_to_what_and_who(app, admin):
    someone = add_user(app, "someone@example.com")
    answer = admin.post(f"/support/staff/{someone}", {"role": "support", "confirm": "y"})
    assert answer.status_code == 302
    page = admin.text(f"/support/clients/{someone}")
    row = re.search(r"Role changed</td><td[^>]*>([^<]*)<", page)
    assert row, page
    assert "client" in row.group(1) and "support" in row.group(1), row.group(1)
    assert ADMIN in row.group(1)
