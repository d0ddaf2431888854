"""The code page's poll, /login/code/status: its fast path answers what the route would.

Every waiting code page asks every few seconds, so the plain case (this browser's own sign-in,
pending) is answered in front of Flask (StatusFastPath in blueprints/auth.py). These tests hold
it to the route: the same JSON and the same headers in every delivery state, and the route's
own answer for everything the fast path leaves to it.
"""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from blueprints.auth import StatusFastPath
from extensions import db
from models import Delivery, SignIn
from services import clock
from services.signin import codes
from tests.conftest import Browser, add_user, statements_of

STATUS = "/login/code/status"


@pytest.fixture
def route_calls(app):
    """How many times the Flask route itself answered."""
    calls = []
    route = app.view_functions["auth.status"]
    app.view_functions["auth.status"] = lambda: calls.append(1) or route()
    return calls


def pending(app, browser) -> int:
    assert browser.log_in().status_code == 302
    with app.app_context():
        return db.session.scalar(select(SignIn.id).order_by(SignIn.id.desc()))


def route_answer(monkeypatch, browser, path, **kwargs):
    """What the route answers to the same request, with the fast path stood aside."""
    with monkeypatch.context() as patch:
        patch.setattr(StatusFastPath, "answer", lambda self, environ: None)
        return browser.get(path, **kwargs)


def set_message(app, **values) -> None:
    with app.app_context():
        db.session.execute(update(Delivery).values(**values))
        db.session.commit()


def same_answer(fast, slow) -> bool:
    """The same JSON, byte for byte, but for a resend countdown read a moment apart, which may
    have crossed a second between the two reads (it is 23 or 22 here, so the length holds)."""
    countdown = re.compile(rb'"resend_wait":\s*(\d+)')
    fast_body, slow_body = fast.get_data(), slow.get_data()
    fast_wait, slow_wait = (int(countdown.search(body)[1]) for body in (fast_body, slow_body))
    return (abs(fast_wait - slow_wait) <= 1
            and countdown.sub(b"", fast_body) == countdown.sub(b"", slow_body))


MESSAGE_STATES = {
    "queued": {},
    "sending": {"status": "sending", "claimed_by": "another worker"},
    "retrying": {"status": "queued", "attempts": 1, "last_error": "451 greylisted"},
    "sent": {"status": "sent", "attempts": 1, "sent_at": clock.now},
    "failed": {"status": "failed", "attempts": 3, "last_error": "550 no such mailbox"},
    "none": None,  # no message at all (an app's code, say): the join finds nothing
}


@pytest.mark.parametrize("state", list(MESSAGE_STATES))
@pytest.mark.parametrize("base_url", ["http://localhost", "https://localhost"])
def test_the_fast_path_answers_exactly_what_the_route_would(
        app, user, browser, route_calls, monkeypatch, state, base_url):
    sign_in_id = pending(app, browser)
    values = MESSAGE_STATES[state]
    if values is None:
        with app.app_context():
            db.session.execute(Delivery.__table__.delete())
            db.session.commit()
    elif values:
        set_message(app, **{k: v() if callable(v) else v for k, v in values.items()})
    clock.advance(timedelta(seconds=7))  # part-way through the resend wait
    for path in (STATUS, f"{STATUS}?sign_in={sign_in_id}"):  # the bench's ask, the page's ask
        fast = browser.get(path, base_url=base_url)
        assert route_calls == []
        slow = route_answer(monkeypatch, browser, path, base_url=base_url)
        assert route_calls == [1]
        route_calls.clear()
        assert fast.status_code == slow.status_code == 200
        assert same_answer(fast, slow)
        assert sorted(fast.headers.items()) == sorted(slow.headers.items())
    document = fast.get_json()
    assert document["status"] == "pending" and document["resend_wait"] in (22, 23)
    assert document["delivery"]["state"] == state
    assert ("Strict-Transport-Security" in fast.headers) == base_url.startswith("https")


def test_the_route_answers_everything_else(app, user, smtp, deliver, browser, route_calls):
    sign_in_id = pending(app, browser)
    assert browser.get(STATUS).status_code == 200 and route_calls == []
    # Another sign-in asked by id, or a query the page never sends: the route's to read.
    assert browser.get(f"{STATUS}?sign_in={sign_in_id + 1}").status_code == 200
    assert browser.get(f"{STATUS}?sign_in=0{sign_in_id}").status_code == 200
    assert len(route_calls) == 2
    # No cookie, or a forged one: the route says there is no sign-in.
    stranger = Browser(app)
    assert stranger.get(STATUS).get_json() == {"status": "none", "signed_in": False}
    forged = Browser(app)
    forged.client.set_cookie(app.config["SESSION_COOKIE_NAME"],
                             browser.client.get_cookie(app.config["SESSION_COOKIE_NAME"])
                             .value[:-2] + "xx")
    assert forged.get(STATUS).status_code == 404
    assert len(route_calls) == 4
    # A session Flask would sign again on every answer: the route, so the cookie is renewed.
    with browser.client.session_transaction() as session:
        session.permanent = True
    answer = browser.get(STATUS)
    assert answer.status_code == 200 and "Set-Cookie" in answer.headers
    assert len(route_calls) == 5
    with browser.client.session_transaction() as session:
        session.permanent = False
    # A code that has run out: the route ends the sign-in and says so.
    clock.advance(codes.CODE_LIFETIME)
    assert browser.get(STATUS).get_json()["status"] == "expired"
    assert len(route_calls) == 6
    with app.app_context():
        assert db.session.get(SignIn, sign_in_id).status == "expired"


def test_a_read_that_fails_is_answered_by_the_route(app, user, browser, route_calls,
                                                     monkeypatch):
    """A connection the database dropped (say, after a restart): the route, on the app's
    checked pool, answers the same poll."""
    pending(app, browser)
    browser.get(STATUS)

    def dropped(self):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    monkeypatch.setattr(StatusFastPath, "connect", dropped)
    answer = browser.get(STATUS)
    assert answer.status_code == 200 and answer.get_json()["status"] == "pending"
    assert route_calls == [1]


def test_an_ended_sign_in_is_the_routes_to_describe(app, smtp, deliver, route_calls):
    add_user(app)
    first, second = Browser(app), Browser(app)
    old = pending(app, first)
    assert second.log_in().status_code == 302  # a second Log In: a new code, the old one ends
    second.post("/login", {"action": "new"})
    document = first.get(f"{STATUS}?sign_in={old}").get_json()
    assert document["status"] == "superseded" and document["newer"] is not None
    assert route_calls


def test_one_poll_is_one_select(app, user, browser):
    pending(app, browser)
    browser.get(STATUS)
    with statements_of(app) as statements:
        for _ in range(3):
            assert browser.get(STATUS).status_code == 200
    assert statements == ["SELECT"] * 3


