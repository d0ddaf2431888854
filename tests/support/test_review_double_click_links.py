"""A double click on "Send a link to set a new password" (or "Send the invitation again")
posted twice, and each post made a new link, ending the one before: the client got two
emails, and the link in the first one no longer worked. The same staff action again within a
minute, once the first link's email has left, now sends nothing and says that link works.
(A link replaced before its email left is cancelled unsent, so that case was never a problem;
the dispatcher, woken by the first post's commit, has usually sent it by the time the second
click arrives, as `deliver()` between them does here.)"""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.accounts.conftest import link_in, path_of
from tests.conftest import Browser
from tests.support.conftest import CLIENT


def _links(smtp, part: str) -> list[str]:
    return [path_of(link_in(m.text, part)) for m in smtp.messages
            if m.to == [CLIENT] and part in m.text]


def test_a_double_click_on_send_reset_sends_one_link_that_works(app, client_id, staff, smtp,
                                                                deliver):
    url = f"/support/clients/{client_id}/actions/send-reset"
    token = staff.csrf_for(url)
    first = staff.post(url, {"confirm": "y", "csrf_token": token})
    deliver()
    smtp.wait_for(1)
    second = staff.post(url, {"confirm": "y", "csrf_token": token})
    assert first.status_code == second.status_code == 302
    deliver()
    links = _links(smtp, "/password/reset/")
    assert len(links) == 1, links
    assert Browser(app).get(links[0]).status_code == 200  # the one link sent works
    page = staff.text(f"/support/clients/{client_id}")
    assert "Nothing more was sent" in page  # the second click's flash

    # A minute on, staff may send a new one (the client lost the first, say).
    clock.advance(timedelta(minutes=1, seconds=1))
    assert staff.post(url, {"confirm": "y"}).status_code == 302
    deliver()
    smtp.wait_for(2)
    assert len(_links(smtp, "/password/reset/")) == 2


def test_a_double_click_on_send_the_invitation_again_sends_one(app, staff, smtp, deliver):
    added = staff.post("/support/clients/new", {"email": CLIENT, "channel": "email"})
    assert added.status_code == 302
    client_id = int(added.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    deliver()
    smtp.wait_for(1)
    clock.advance(timedelta(minutes=2))
    url = f"/support/clients/{client_id}/actions/resend-invitation"
    token = staff.csrf_for(url)
    assert staff.post(url, {"confirm": "y", "csrf_token": token}).status_code == 302
    deliver()
    smtp.wait_for(2)
    assert staff.post(url, {"confirm": "y", "csrf_token": token}).status_code == 302
    deliver()
    links = _links(smtp, "/welcome/")
    assert len(links) == 2, links  # the first invitation, and one sent again
    assert Browser(app).get(links[-1]).status_code == 200
