"""An old code typed after its sign-in was ended elsewhere (a new password in another tab,
"Sign out everywhere else", support) is told so: it was not "too many wrong codes"."""

from __future__ import annotations

import html

from sqlalchemy import select

from extensions import db
from models import SignIn, User
from services.signin import codes
from tests.conftest import request_code


def test_a_code_of_a_sign_in_ended_elsewhere_says_it_was_ended(app, user, smtp, deliver,
                                                               browser):
    code = request_code(browser, smtp, deliver)
    with app.app_context():
        codes.end_pending_sign_ins(db.session.get(User, user), by="password_reset")
        db.session.commit()
    response = browser.enter_code(code)
    text = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "too many wrong codes" not in text
    assert "This sign-in was ended before its code was entered" in text
    with app.app_context():
        ended = db.session.scalar(select(SignIn))
        assert (ended.status, ended.failed_attempts) == ("cancelled", 0)


def test_the_code_page_says_why_its_sign_in_was_ended_before_any_code_is_typed(
        app, user, smtp, deliver, browser):
    # Sixth review: on reload the page said only "This sign-in has ended"; the reason came
    # (as "for example…") only after a code was typed.
    code = request_code(browser, smtp, deliver)
    with app.app_context():
        codes.end_pending_sign_ins(db.session.get(User, user), by="password")
        db.session.commit()
    text = html.unescape(browser.text("/login/code"))
    assert "This sign-in was ended before its code was entered, because the account's " \
           "password was changed, so its code no longer works." in " ".join(text.split())
    assert "Sign in again" in text
    typed = " ".join(html.unescape(browser.enter_code(code).get_data(as_text=True)).split())
    assert "because the account's password was changed" in typed
    assert "for example" not in typed


def test_every_reason_a_sign_in_is_ended_for_has_words_for_its_code_page():
    # Each `by` that end_pending_sign_ins and support's "End pending sign-ins" record.
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parent.parent
    recorded = set()
    for path in (root / "services").rglob("*.py"):
        text = path.read_text()
        recorded |= set(re.findall(r'end_pending_sign_ins\([^)]*by="(\w+)"', text))
        recorded |= set(re.findall(r'"signin_cancelled".*?"by": "(\w+)"', text, re.S))
    recorded |= {"passkey", "device"}  # sign_ins.py passes its channel as `by`
    assert recorded and recorded <= set(codes.CANCELLED_BECAUSE), recorded - set(
        codes.CANCELLED_BECAUSE)
