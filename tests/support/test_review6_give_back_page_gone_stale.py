"""Give the account back, from a page shown before the address changed.

The client calls because the note "a change of your sign-in address was asked for" reached
them. Support opens *Give the account back*: the address has not been changed, so the page
says "Leave it empty to keep client@example.com". While support checks who they are talking
to, the intruder uses the link and the account moves to the intruder's address. Support then
confirms with the box left empty, as the page said: before, the account stayed with the
intruder's address and the link to choose a new password went to the intruder. Now the
confirmation knows which address it was shown for, and says what changed instead of acting.
"""

from __future__ import annotations

import re

from sqlalchemy import func, select

from extensions import db
from models import Delivery, Event, User
from tests.accounts.conftest import new_address_link
from tests.conftest import Browser, user_by_email
from tests.support.conftest import CLIENT

INTRUDER = "intruder@example.net"
HIDDEN = re.compile(r'name="account_email" type="hidden" value="([^"]*)"'
                    r'|type="hidden" name="account_email" value="([^"]*)"'
                    r'|name="account_email" value="([^"]*)"')


def _shown_for(page: str):
    """The address the confirmation was shown for, as the browser posts it back (None when
    the page does not say, as before)."""
    match = HIDDEN.search(page)
    return next(group for group in match.groups() if group is not None) if match else None


def _posted(csrf: str, shown, **fields) -> dict:
    return {"csrf_token": csrf, **({"account_email": shown} if shown else {}), **fields}


def test_a_page_shown_before_the_address_changed_does_not_give_the_account_to_the_intruder(
        app, client_id, sign_in, staff, smtp, deliver):
    intruder = sign_in(CLIENT, b=Browser(app))
    link = new_address_link(intruder, smtp, deliver, INTRUDER)  # asked for, not yet used
    url = f"/support/clients/{client_id}/actions/give-back"
    page = staff.text(url)
    assert f"Leave it empty to keep {CLIENT}." in page
    csrf, shown = staff.last_csrf, _shown_for(page)

    assert intruder.post(link, {}).status_code == 302  # meanwhile, the intruder moves it
    assert user_by_email(app, INTRUDER).id == client_id

    answer = staff.client.post(url, data=_posted(csrf, shown, owner_email="", confirm="y"))
    assert answer.status_code == 422
    said = answer.get_data(as_text=True)
    assert f"changed from {CLIENT} to {INTRUDER}" in said
    # The page shown again is for the address as it is now, so a second confirm can go on.
    assert _shown_for(said) == INTRUDER
    with app.app_context():
        assert db.session.get(User, client_id).email == INTRUDER
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "account_recovered")) == 0
        assert db.session.scalar(select(func.count(Delivery.id)).where(
            Delivery.kind == "reset", Delivery.destination == INTRUDER)) == 0

    # Confirmed again from the page now shown, with the owner's address: given back.
    answer = staff.client.post(url, data=_posted(
        staff.last_csrf, _shown_for(said), owner_email=CLIENT, confirm="y"))
    assert answer.status_code == 302
    with app.app_context():
        assert db.session.get(User, client_id).email == CLIENT
