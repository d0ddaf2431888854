"""`flask prune` forgets checks of a new mobile number with the rest of the old history."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from extensions import db
from models import PhoneProof
from services import clock
from tests.conftest import user_by_email

PAGE = "/account/security"


def _proofs(app) -> list[str]:
    with app.app_context():
        return db.session.scalars(select(PhoneProof.phone).order_by(PhoneProof.id)).all()


def test_prune_deletes_number_checks_older_than_the_retention(app, user, sign_in, deliver):
    b = sign_in()
    assert b.post(PAGE, {"channel": "sms", "phone": "07400 111111"}).status_code == 302
    clock.advance(timedelta(days=40))
    b = sign_in()  # the session above has long timed out
    assert b.post(PAGE, {"channel": "sms", "phone": "07400 222222"}).status_code == 302
    assert _proofs(app) == ["+447400111111", "+447400222222"]

    result = app.test_cli_runner().invoke(args=["prune", "--days", "30"])
    assert result.exit_code == 0, result.output
    assert "1 mobile number checks" in result.output
    assert _proofs(app) == ["+447400222222"]  # the one of the last 30 days stays

    # The number being checked now is still the one the page offers to confirm.
    deliver()
    assert "Confirm your new number" in b.text(PAGE)
    assert user_by_email(app, "client@example.com").phone is None
