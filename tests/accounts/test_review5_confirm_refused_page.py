"""A confirmation that cannot go ahead does not offer the same button again.

When the new address had become another account's by the time the link was used, the page
said "... now belongs to another account, so nothing has changed" above the button "Yes,
use ...", which could only be refused again. Now it says what happened and offers what can
be done instead: choose another address, or sign in.
"""

from __future__ import annotations

from tests.accounts.conftest import new_address_link
from tests.conftest import add_user

SHARED = "shared@example.com"


def test_an_address_taken_meanwhile_is_refused_without_the_button_again(app, user, smtp,
                                                                        deliver, sign_in):
    b = sign_in()
    path = new_address_link(b, smtp, deliver, SHARED)
    add_user(app, SHARED)  # someone else's account has it now

    refused = b.post(path, {})
    assert refused.status_code == 409
    page = refused.get_data(as_text=True)
    assert f"{SHARED} now belongs to another account" in page
    assert "Yes, use" not in page and f'action="{path}"' not in page
    assert 'href="/account/email"' in page  # a way on: choose another address
