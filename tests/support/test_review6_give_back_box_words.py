"""The box support ticks to give an account back says whom it is given back to.

Every confirmation's box reads "I want to <action> for <the account's address>". For this
action that read "I want to give the account back for intruder@example.net": on the page for
an account someone else moved to their own address, it sounded like handing it to them.
"""

from __future__ import annotations

import html
import re

from tests.accounts.conftest import new_address_link
from tests.conftest import Browser
from tests.support.conftest import CLIENT

INTRUDER = "intruder@example.net"


def _box(page: str) -> str:
    label = re.search(r'<label for="confirm">(.*?)</label>', page, re.S)
    assert label, page
    return html.unescape(re.sub(r"\s+", " ", label.group(1))).strip()


def test_the_box_gives_the_account_back_to_its_owner(app, client_id, sign_in, staff, smtp,
                                                     deliver):
    intruder = sign_in(CLIENT, b=Browser(app))
    assert intruder.post(new_address_link(intruder, smtp, deliver, INTRUDER), {}).status_code == 302
    box = _box(staff.text(f"/support/clients/{client_id}/actions/give-back"))
    assert "back for" not in box, box
    assert box == ("I have checked who I am talking to, and I want to give the account that "
                   f"signs in with {INTRUDER} back to its owner."), box


def test_other_boxes_keep_their_words(app, client_id, staff):
    box = _box(staff.text(f"/support/clients/{client_id}/actions/send-reset"))
    assert box == ("I have checked who I am talking to, and I want to send a link to set a new "
                   f"password for {CLIENT}."), box
