"""The keep-or-new question, answered after it expired (5 minutes), sent the client to a bare
/login: a client an app had sent to /login?next=... then signed in and landed on the portal,
the app's sign-in lost (sixth review)."""

from __future__ import annotations

from datetime import timedelta

from services import clock
from tests.conftest import TEST_PASSWORD, Browser

APP_PAGE = "/oauth/authorize?client_id=files&state=abc"


def test_an_expired_question_sends_the_client_back_with_where_they_were_going(app, user):
    assert Browser(app).log_in().status_code == 302  # a sign-in waiting elsewhere
    other = Browser(app)
    answer = other.post(f"/login?next={APP_PAGE.replace('&', '%26')}",
                        {"email": "client@example.com", "password": TEST_PASSWORD},
                        form_page="/login")
    assert answer.status_code == 302
    assert 'name="nonce"' in other.text("/login")  # the question
    clock.advance(timedelta(minutes=6))
    try:
        answer = other.post("/login", {"action": "new", "csrf_token": other.last_csrf,
                                       "nonce": other.last_nonce})
    finally:
        clock.reset()
    assert answer.status_code == 302
    assert answer.headers["Location"] == "/login?next=/oauth/authorize?client_id%3Dfiles%26state%3Dabc"
    assert "That question had expired" in other.text(answer.headers["Location"])
