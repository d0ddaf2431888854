"""`flask prune` forgets invitation, reset and email links long expired."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from extensions import db
from models import AccountToken, User
from services import clock
from services.support import retention
from services.accounts import tokens


def test_prune_forgets_long_expired_links_only(app, user):
    with app.app_context():
        owner = db.session.get(User, user)
        tokens.issue(owner, "reset")
        db.session.commit()
        clock.advance(timedelta(days=91))
        try:
            tokens.issue(owner, "invitation")  # a live one, kept
            db.session.commit()
            retention.prune(90)
            kept = db.session.scalars(select(AccountToken.purpose)).all()
        finally:
            clock.reset()
        assert kept == ["invitation"]
        assert db.session.scalar(select(func.count(AccountToken.id))) == 1
