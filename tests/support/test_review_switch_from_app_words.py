""""Switch to codes by email" for a client whose codes come from an authenticator app (say,
the phone with the app is lost): the confirmation said they get codes "by text to" no number,
and that their number is kept. It says what is true: codes come from the app now."""

from __future__ import annotations

from extensions import db
from models import User
from tests.authenticators.conftest import set_up_app  # noqa: F401 - a fixture
from tests.conftest import Browser
from tests.support.conftest import CLIENT, PHONE_UA


def test_switching_an_app_client_to_email_says_where_codes_come_from_now(app, client_id,
                                                                           set_up_app, staff):
    set_up_app()  # CLIENT's codes now come from the app

    url = f"/support/clients/{client_id}/actions/switch-to-email"
    page = staff.text(url)
    assert "by text" not in page, page
    assert "Their number is kept" not in page
    assert "authenticator app" in page
    assert staff.post(url, {"confirm": "y"}).status_code == 302
    with app.app_context():
        assert db.session.get(User, client_id).channel == "email"

    # And it works: the next sign-in's code comes by email.
    other = Browser(app, user_agent=PHONE_UA)
    assert other.log_in(CLIENT).status_code == 302
    assert "c•••@example.com" in other.text("/login/code")
