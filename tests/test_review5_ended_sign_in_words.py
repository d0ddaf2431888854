"""An old code typed after its sign-in was ended elsewhere (a new password in another tab,
"Sign out everywhere else", support) is told so: it was not "too many wrong codes"."""

from __future__ import annotations

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
