"""The longest `next` a sign-in carries (NEXT_LONGEST) fits everywhere it is carried: the
sign-in's row, and the session cookie while the keep-or-new question holds it (a browser
drops a cookie over 4096 bytes, and with it the question and the CSRF token)."""

from __future__ import annotations

import secrets
from urllib.parse import quote

from blueprints.safety import NEXT_LONGEST
from tests.conftest import TEST_PASSWORD, Browser


def test_the_longest_next_fits_the_cookie_of_the_keep_or_new_question(app, user, smtp, deliver):
    page = "/portal?" + secrets.token_urlsafe(NEXT_LONGEST)[:NEXT_LONGEST - len("/portal?")]
    assert len(page) == NEXT_LONGEST
    assert Browser(app).log_in().status_code == 302  # a sign-in waiting elsewhere
    other = Browser(app)
    answer = other.post(f"/login?next={quote(page, safe='/')}",
                        {"email": "client@example.com", "password": TEST_PASSWORD},
                        form_page="/login")
    assert answer.status_code == 302
    cookies = [value for name, value in answer.headers.items() if name == "Set-Cookie"]
    assert cookies and all(len(cookie) < 4096 for cookie in cookies)
    assert 'name="nonce"' in other.text("/login")  # the question, with the cookie it set
    answer = other.post("/login", {"action": "new", "csrf_token": other.last_csrf,
                                   "nonce": other.last_nonce})
    assert answer.status_code == 302
    deliver()
    signed_in = other.enter_code(smtp.last_to("client@example.com").code)
    assert signed_in.headers["Location"] == page  # carried whole to the end
