"""The hourly cap on codes, on the login page: "Your latest code may still arrive" only with a
way to enter it, "Enter the code we already sent"; without a code this browser can still
enter, no such promise."""

from __future__ import annotations

import re
from datetime import timedelta

from extensions import db
from models import SignIn
from services import clock
from tests.conftest import Browser, request_code

ENTER_IT = '<a class="button button-primary" href="/login/code">Enter the code we already sent</a>'


def _words(page: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", page).split())


def _capped(app, smtp, deliver, b: Browser):
    """Two codes of the hour's two sent, the newest still waiting in `b`; then a third try."""
    app.config["CODES_PER_ACCOUNT_PER_HOUR"] = 2
    request_code(b, smtp, deliver)
    clock.advance(timedelta(minutes=1))
    code = request_code(b, smtp, deliver)  # this browser's own sign-in: no keep-or-new question
    response = b.log_in()
    assert response.status_code == 429
    return response, code


def test_a_code_this_browser_can_still_enter_is_offered(app, user, smtp, deliver):
    b = Browser(app)
    response, code = _capped(app, smtp, deliver, b)
    page = response.get_data(as_text=True)
    assert "We have sent this account 2 codes in the last hour" in page
    assert "Your latest code may still arrive." in _words(page)
    assert ENTER_IT in page
    # It leads to the waiting sign-in, whose code works.
    assert b.get("/login/code").status_code == 200
    assert b.enter_code(code).status_code == 302
    assert b.get("/portal").status_code == 200


def test_without_a_code_to_enter_nothing_is_promised(app, user, smtp, deliver):
    b = Browser(app)
    _capped(app, smtp, deliver, b)
    clock.advance(timedelta(minutes=11))  # the waiting code has run out
    response = b.log_in()
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "We have sent this account 2 codes in the last hour" in page
    assert "may still arrive" not in page and "Enter the code we already sent" not in page


def test_another_browser_is_promised_nothing(app, user, smtp, deliver):
    _capped(app, smtp, deliver, Browser(app))
    other = Browser(app)
    answer = other.post("/login", {"email": "client@example.com",
                                   "password": "correct horse battery"})
    assert answer.headers["Location"] == "/login"  # a code is on its way elsewhere: keep or new?
    response = other.post("/login", {"action": "new"}, form_page="/login")
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "most we send" in page
    assert "may still arrive" not in page and "Enter the code we already sent" not in page


def test_a_code_that_could_not_be_sent_is_not_offered(app, user, smtp, deliver):
    b = Browser(app)
    app.config["CODES_PER_ACCOUNT_PER_HOUR"] = 2
    request_code(b, smtp, deliver)
    clock.advance(timedelta(minutes=1))
    smtp.refuse_with = "550 No such mailbox"
    assert b.log_in().status_code == 302
    deliver()
    response = b.log_in()
    assert response.status_code == 429
    page = response.get_data(as_text=True)
    assert "may still arrive" not in page and "Enter the code we already sent" not in page
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count(SignIn.id))) == 2
