"""Issue 11, point 5: the answer to "keep the code already sent, or a new one?" works once.

On the old code, after one right password, re-posting `action=new` with the same cookie
started a new sign-in (and sent a new code) each time: 4 from one password check.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Event, SignIn
from tests.conftest import Browser


def _sign_ins(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(SignIn.id)))


@pytest.fixture
def asked(app, user):
    """Browser A has a code on its way; browser B typed the password and is asked."""
    first, second = Browser(app), Browser(app)
    assert first.log_in().status_code == 302
    assert second.log_in().status_code == 302
    page = second.text("/login")
    assert "Use the code already sent" in page and second.last_nonce
    return second


@pytest.mark.parametrize("first_answer", ["new", "keep"])
def test_a_replayed_answer_starts_nothing(app, asked, first_answer):
    cookie = asked.client.get_cookie("clientgate_session").value
    answer = {"action": first_answer, "csrf_token": asked.last_csrf, "nonce": asked.last_nonce}
    response = asked.client.post("/login", data=answer)
    assert response.status_code == 302 and response.location.endswith("/login/code")
    before = _sign_ins(app)
    assert before == (2 if first_answer == "new" else 1)
    for action in ("new", "new", "keep", "new"):
        # The attacker's replay: the cookie as it was when the question was asked.
        asked.client.set_cookie("clientgate_session", cookie)
        replay = asked.client.post("/login", data={**answer, "action": action})
        assert replay.status_code == 302 and replay.location.endswith("/login")
        assert "already been answered" in asked.text("/login")
    assert _sign_ins(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "choice_answered")) == 1


def test_an_answer_without_this_questions_nonce_is_refused(app, asked):
    response = asked.client.post("/login", data={
        "action": "new", "csrf_token": asked.last_csrf, "nonce": "not-the-nonce"})
    assert response.status_code == 302 and response.location.endswith("/login")
    assert _sign_ins(app) == 1
