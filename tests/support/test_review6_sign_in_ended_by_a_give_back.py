"""A sign-in waiting for its code when support gave the account back.

Its step and its ending said "The operator gave the account back to its owner (users
recover)" whoever did it: from the console, support read that someone on the server had,
though the trail names them.
"""

from __future__ import annotations

import html
import re

from tests.conftest import Browser
from tests.support.conftest import CLIENT, STAFF, views


def test_a_sign_in_ended_by_a_give_back_names_who_gave_it_back(app, client_id, staff, smtp,
                                                               deliver):
    waiting = Browser(app)
    count = len(smtp.messages)
    assert waiting.log_in(CLIENT).status_code == 302  # a code is on its way
    deliver()
    smtp.wait_for(count + 1)

    url = f"/support/clients/{client_id}/actions/give-back"
    assert staff.post(url, {"owner_email": "", "confirm": "y"}).status_code == 302

    (view,) = views(app, client_id)
    told = [f"{step.what}: {step.detail}" for step in view.steps] + [view.ending]
    assert not [t for t in told if "operator" in t or "users recover" in t], told
    assert any(f"By {STAFF}." in t for t in told), told
    page = html.unescape(re.sub(r"\s+", " ", staff.text(f"/support/clients/{client_id}")))
    assert "users recover" not in page
