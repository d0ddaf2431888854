"""A link to confirm a new email address that was used already, or has run out, says so.

Both were told "This link does not work: it may have been replaced by a newer one, or
something changed on the account", the words for a withdrawn link. A client who taps the
link in the email a second time, after confirming, was left thinking the change had failed;
one who opens it after the hour was not told that an hour is all it works for, nor that
nothing changed.
"""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.accounts.conftest import new_address_link
from tests.conftest import Browser

NEW = "new.address@example.com"


def ask_for_link(b: Browser, smtp, deliver) -> str:
    return new_address_link(b, smtp, deliver, NEW)


def test_a_confirmation_link_used_already_says_the_address_was_changed(app, user, smtp,
                                                                       deliver, sign_in):
    b = sign_in()
    path = ask_for_link(b, smtp, deliver)
    assert b.post(path, {}).status_code == 302
    again = Browser(app).get(path)
    assert again.status_code == 410
    page = again.get_data(as_text=True)
    assert "already been used" in page
    assert "now sign in with" in page  # the change happened: nothing to do again
    assert "replaced by a newer one" not in page


def test_a_confirmation_link_that_ran_out_says_so_and_that_nothing_changed(app, user, smtp,
                                                                           deliver, sign_in):
    b = sign_in()
    path = ask_for_link(b, smtp, deliver)
    clock.advance(timedelta(hours=1, minutes=1))
    late = Browser(app).get(path)
    assert late.status_code == 410
    page = late.get_data(as_text=True)
    assert "run out" in page and "one hour" in page
    assert "Nothing has changed" in page
    assert "replaced by a newer one" not in page
