"""A row of "Sign-ins that went wrong lately" links to the client's page at that sign-in. For
a client who has signed in more than a page's worth since (20), the link went to their newest
page, where the sign-in that went wrong is not: support saw no trace of the problem named."""

from __future__ import annotations

import re
from datetime import timedelta

from extensions import db
from models import SignIn, User
from services import clock, support
from services.signin import codes
from tests.conftest import add_user


def _sign_ins(app, user_id: int, n: int) -> list[int]:
    made = []
    with app.app_context():
        client = db.session.get(User, user_id)
        for _ in range(n):
            made.append(codes.start_sign_in(client, ip="127.0.0.1", user_agent="test").id)
            db.session.commit()
            clock.advance(timedelta(minutes=11))
            codes.expire_due_sign_ins()
            db.session.commit()
    return made


def test_the_link_shows_the_sign_in_that_went_wrong(app, client_id, staff):
    [troubled] = _sign_ins(app, client_id, 1)  # ran out unused: goes on the list
    with app.app_context():
        assert db.session.get(SignIn, troubled).status == "expired"
        # The ones since were superseded, not expired: nothing on the list.
        client = db.session.get(User, client_id)
        for _ in range(support.PAGE_SIZE + 1):
            codes.start_sign_in(client, ip="127.0.0.1", user_agent="test")
            db.session.commit()
            clock.advance(timedelta(seconds=30))

    front = staff.text("/support")
    links = re.findall(r'href="([^"]*#sign-in-(\d+))"', front)
    [link] = [href for href, sign_in in links if int(sign_in) == troubled]
    page = staff.text(link.replace("&amp;", "&").split("#")[0])
    assert f'id="sign-in-{troubled}"' in page


def test_a_sign_in_on_the_newest_page_links_to_the_newest_page(app, client_id, staff):
    [troubled] = _sign_ins(app, client_id, 1)
    front = staff.text("/support")
    assert f'href="/support/clients/{client_id}#sign-in-{troubled}"' in front


def test_another_clients_sign_in_in_the_address_shows_nothing_of_theirs(app, client_id, staff):
    other = add_user(app, "other@example.com")
    [theirs] = _sign_ins(app, other, 1)
    with app.app_context():
        codes.start_sign_in(db.session.get(User, client_id), ip="127.0.0.1", user_agent="test")
        db.session.commit()
    for value in (str(theirs), "0", "-1", "x", str(2**40)):
        answer = staff.get(f"/support/clients/{client_id}?sign_in={value}")
        assert answer.status_code == 200
        page = answer.get_data(as_text=True)
        assert f'id="sign-in-{theirs}"' not in page and "other@example.com" not in page
        assert "Newest sign-ins" not in page  # the client's own newest page
