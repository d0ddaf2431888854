""""I never got my code" when the hourly cap stopped it: support is told not only that no code
was sent but until when none can be, which is what the client needs to hear (an unlock does
not lift the cap)."""

from __future__ import annotations

import re

from tests.support.conftest import CLIENT


def test_a_code_refused_by_the_hourly_cap_says_until_when(app, client_id, staff, phone, deliver):
    app.config["CODES_PER_ACCOUNT_PER_HOUR"] = 2
    for _ in range(2):
        assert phone.log_in(CLIENT).status_code == 302
        deliver()
    refused = phone.log_in(CLIENT)
    assert refused.status_code == 429, refused.status_code
    told = re.search(r"until (\d\d:\d\d)", refused.get_data(as_text=True))
    assert told, refused.get_data(as_text=True)

    page = staff.text(f"/support/clients/{client_id}")
    row = re.search(r"No code sent</td><td[^>]*>([^<]*)<", page)
    assert row, page
    assert "Too many codes for this account in an hour" in row.group(1)
    assert told.group(1) in row.group(1), row.group(1)
