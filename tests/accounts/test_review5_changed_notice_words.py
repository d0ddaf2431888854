"""The old address's notice says which sessions the change ended: all of them, or all but the
browser that confirmed it (which stays signed in). If an intruder confirmed, the owner must
not read that they are out everywhere."""

from __future__ import annotations

import pytest

from tests.accounts.conftest import new_address_link
from tests.conftest import TEST_PASSWORD, Browser

CLIENT, NEW = "client@example.com", "new.address@example.com"


@pytest.mark.parametrize("where", ["signed in here", "another browser"])
def test_the_notice_says_which_sessions_were_ended(app, user, smtp, deliver, sign_in, where):
    b = sign_in()
    path = new_address_link(b, smtp, deliver, NEW)
    count = len(smtp.messages)
    confirming = b if where == "signed in here" else Browser(app)
    assert confirming.post(path, {"current_password": TEST_PASSWORD}).status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    notice = smtp.last_to(CLIENT).text
    assert "was changed at" in notice
    kept = "we have signed it out everywhere except the browser where the change was confirmed"
    assert (kept in notice) is (where == "signed in here")
    assert "we have signed it out everywhere" in notice
