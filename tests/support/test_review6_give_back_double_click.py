"""A double click on "Give the account back" gives it back once.

Each post gave the account back again, and each sent a new link to choose a new password,
ending the one before: the client got two emails, and the link in the first one (the one a
client opens first) no longer worked; the timeline showed the account given back twice. The
same as a double click on "Send a link to set a new password" (test_review_double_click_links),
now answered the same way: the second click does nothing and says the first link works.
"""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Event
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser
from tests.support.conftest import CLIENT
from tests.support.test_give_back import _taken_over


def _reset_links(smtp) -> list[str]:
    return [path_of(link_in(m.text, "/password/reset/")) for m in smtp.messages
            if m.to == [CLIENT] and "/password/reset/" in m.text]


def _double_click(staff, smtp, deliver, url: str, fields: dict):
    token = staff.csrf_for(url)
    page = staff.get(url).get_data(as_text=True)
    shown = {}
    marker = 'name="account_email" type="hidden" value="'
    if marker in page:  # the address the page was shown for, posted back as a browser would
        shown["account_email"] = page.split(marker, 1)[1].split('"', 1)[0]
    count = len(smtp.messages)
    first = staff.post(url, {**fields, **shown, "confirm": "y", "csrf_token": token})
    deliver()
    smtp.wait_for(count + 1)
    second = staff.post(url, {**fields, **shown, "confirm": "y", "csrf_token": token})
    deliver()
    return first, second


def _given_back(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "account_recovered"))


def test_a_double_click_keeping_the_address_sends_one_link_that_works(app, client_id, staff,
                                                                      smtp, deliver):
    url = f"/support/clients/{client_id}/actions/give-back"
    first, second = _double_click(staff, smtp, deliver, url, {"owner_email": ""})
    assert first.status_code == 302 and second.status_code in (302, 409), second.status_code
    links = _reset_links(smtp)
    assert len(links) == 1, links
    assert Browser(app).get(links[0]).status_code == 200  # the one link sent works
    assert _given_back(app) == 1
    assert "Nothing more was done" in staff.text(f"/support/clients/{client_id}")


def test_a_double_click_giving_it_back_to_the_owners_address_sends_one_link(
        app, client_id, sign_in, staff, smtp, deliver):
    _taken_over(app, sign_in, smtp, deliver, client_id)
    url = f"/support/clients/{client_id}/actions/give-back"
    first, second = _double_click(staff, smtp, deliver, url, {"owner_email": CLIENT})
    assert first.status_code == 302 and second.status_code in (302, 409), second.status_code
    links = _reset_links(smtp)
    assert len(links) == 1, links
    assert Browser(app).get(links[0]).status_code == 200
    assert _given_back(app) == 1
    page = staff.text(f"/support/clients/{client_id}")
    assert "Nothing more was done" in page
    assert "While this page was open" not in page  # it was this click's own first post
