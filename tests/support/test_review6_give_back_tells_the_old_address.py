"""Giving an account back to another address tells the address it leaves.

Support gives an account back on the word of a caller, after checking who they are: "the
same check is all that stands between a caller and the account" (SECURITY.md, section 4).
A caller who fools that check names their own address, and the link to choose a new password
goes there. Every other change of the sign-in address is told to the old address, so that its
owner can call the firm straight away (ASVS 6.3.7); before, a give-back moved the account
without a word to anyone but the new address.
"""

from __future__ import annotations

from tests.conftest import Browser
from tests.support.conftest import CLIENT

CALLER = "caller@example.net"


def test_the_address_an_account_is_moved_from_is_told(app, client_id, staff, smtp, deliver):
    url = f"/support/clients/{client_id}/actions/give-back"
    count = len(smtp.messages)
    assert staff.post(url, {"owner_email": CALLER, "confirm": "y"}).status_code == 302
    deliver()
    smtp.wait_for(count + 2)
    told = smtp.last_to(CLIENT)
    assert told in smtp.messages[count:], "the address the account left was not told"
    assert "c•••@example.net" in told.text  # where it went, masked
    assert "Contact us straight away" in told.text
    assert "/password/reset/" not in told.text  # no link, no secret
    assert "/password/reset/" in smtp.last_to(CALLER).text


def test_an_account_given_back_at_its_own_address_gets_only_the_link(app, client_id, staff,
                                                                     smtp, deliver):
    url = f"/support/clients/{client_id}/actions/give-back"
    count = len(smtp.messages)
    assert staff.post(url, {"owner_email": "", "confirm": "y"}).status_code == 302
    deliver()
    smtp.wait_for(count + 1)
    new = smtp.messages[count:]
    assert [m.to for m in new] == [[CLIENT]], [m.subject for m in new]
    assert "/password/reset/" in new[0].text
    assert Browser(app).get("/login").status_code == 200
