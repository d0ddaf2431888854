"""Events written together (services/audit.py, issue 16): one INSERT for several rows, and
the trail the same as when each was written at once."""

from __future__ import annotations

from sqlalchemy import func, select

from extensions import db
from models import Event
from services import audit
from tests.conftest import statements_of


def _types(user_id: int) -> list[str]:
    return list(db.session.scalars(select(Event.type).where(Event.user_id == user_id)
                                   .order_by(Event.id)))


def test_they_wait_for_the_commit_and_keep_their_order(app, user):
    with app.app_context(), statements_of(app) as seen:
        with audit.written_together():
            for kind in ("first", "second", "third"):
                audit.record(kind, user_id=user)
            assert seen == []  # nothing sent yet
            db.session.commit()
        assert seen == ["INSERT INTO events"]  # one statement for the three rows
        assert _types(user) == ["first", "second", "third"]


def test_the_block_writes_them_when_it_ends_before_a_commit(app, user):
    with app.app_context():
        with audit.written_together():
            audit.record("waiting", user_id=user)
            with audit.written_together():  # an inner block leaves them to the outer one
                audit.record("inner", user_id=user)
            assert db.session.scalar(select(func.count(Event.id))) == 0
        # Written in this transaction: a read now sees them, and the commit keeps them.
        assert _types(user) == ["waiting", "inner"]
        db.session.commit()
        assert _types(user) == ["waiting", "inner"]


def test_a_rollback_drops_them_as_it_would_have_taken_them_back(app, user):
    with app.app_context():
        with audit.written_together():
            audit.record("rolled_back", user_id=user)
            db.session.rollback()
            audit.record("kept", user_id=user)
            db.session.commit()
        assert _types(user) == ["kept"]


def test_an_error_in_the_block_writes_nothing(app, user):
    with app.app_context():
        try:
            with audit.written_together():
                audit.record("lost_with_the_error", user_id=user)
                raise RuntimeError("the request failed")
        except RuntimeError:
            db.session.rollback()
        audit.record("after", user_id=user)  # written at once again, outside any block
        db.session.commit()
        assert _types(user) == ["after"]
