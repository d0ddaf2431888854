"""The "End pending sign-ins" confirmation lists each waiting sign-in as it is: one waiting for
an authenticator app's code was listed as "code by email to" and nothing, which is not where
its code comes from."""

from __future__ import annotations

from tests.authenticators.conftest import set_up_app  # noqa: F401 - a fixture
from tests.conftest import Browser
from tests.support.conftest import CLIENT, PHONE_UA


def test_a_sign_in_waiting_for_an_app_code_is_listed_as_one(app, client_id, set_up_app, staff):
    set_up_app()  # CLIENT's codes now come from the app

    other = Browser(app, user_agent=PHONE_UA)
    assert other.log_in(CLIENT).status_code == 302  # waiting for the app's code

    page = staff.text(f"/support/clients/{client_id}/actions/end-sign-ins")
    assert "waiting for a code" in page
    assert "code by email" not in page, page
    assert "authenticator app" in page
