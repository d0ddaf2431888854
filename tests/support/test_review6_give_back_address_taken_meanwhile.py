"""Give the account back to an address that another account takes at the same moment.

The confirmation checks that the owner's address is not another account's sign-in address;
another member of staff may invite someone with that address (or another client confirm it as
their new one) between that check and the commit. Before, the unique index then stopped the
give-back with an error page (500). Now support is told in words that nothing has changed.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from extensions import db
from models import Event, User
from services.accounts import lifecycle
from tests.conftest import add_user
from tests.support.conftest import CLIENT

OWNER = "owner@example.com"


@pytest.mark.parametrize("after", ["the form's check", "the check under the account's lock"])
def test_an_address_taken_after_the_check_is_told_not_an_error_page(app, client_id, staff,
                                                                    monkeypatch, after):
    with app.app_context():
        if after != "the form's check" and db.engine.dialect.name != "postgresql":
            # There the request holds SQLite's one write lock: no one else adds anything.
            pytest.skip("only PostgreSQL lets another request write meanwhile")
    real = lifecycle.owner_address_problem
    checks, taken = [], []

    def checked_then_taken(user, email):
        problem = real(user, email)
        checks.append(email)
        if len(checks) == (1 if after == "the form's check" else 2):
            # Someone else's request adds the address right after this check.
            taken.append(add_user(app, email))
        return problem

    monkeypatch.setattr(lifecycle, "owner_address_problem", checked_then_taken)
    url = f"/support/clients/{client_id}/actions/give-back"
    answer = staff.post(url, {"owner_email": OWNER, "confirm": "y"})
    assert answer.status_code in (302, 409, 422), answer.status_code
    page = staff.text(f"/support/clients/{client_id}") if answer.status_code == 302 \
        else answer.get_data(as_text=True)
    assert f"{OWNER} is another account&#39;s sign-in address" in page
    with app.app_context():
        assert db.session.get(User, client_id).email == CLIENT
        assert db.session.get(User, taken[0]).email == OWNER
        assert db.session.scalar(select(func.count(Event.id)).where(
            Event.type == "account_recovered")) == 0
