"""The confirmation, opened again after an account was given back to its owner's address.

It said the last change of address was the intruder's ("changed ... from c•••@example.com to
i•••@example.net. If the client did not do that, enter their own address below") while the
account already signed in with the owner's address again: the give-back's own change of
address was left out of what the page reads.
"""

from __future__ import annotations

import re

from tests.support.conftest import CLIENT
from tests.support.test_give_back import INTRUDER, _taken_over


def test_the_page_tells_the_give_back_not_the_intruders_change(app, client_id, sign_in, staff,
                                                               smtp, deliver):
    _taken_over(app, sign_in, smtp, deliver, client_id)
    url = f"/support/clients/{client_id}/actions/give-back"
    assert staff.post(url, {"owner_email": CLIENT, "confirm": "y"}).status_code == 302

    page = re.sub(r"\s+", " ", staff.text(url))
    assert "If the client did not do that" not in page
    assert "It was given back" in page
    assert "from <strong>i•••@example.net</strong> to <strong>c•••@example.com</strong>" in page
    assert f"Leave it empty to keep {CLIENT}." in page
