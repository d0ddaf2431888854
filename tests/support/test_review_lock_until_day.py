"""A lock can last a day (the fourth within a week): "Locked until 02:15" beside a lock made at
02:15 reads as a lock that has already ended, or ends in a moment. When the lock ends on
another day than it began, the day is said."""

from __future__ import annotations

import re
from datetime import timedelta

from flask import current_app

from extensions import db
from models import User
from services import audit, clock
from services.signin import limits


def _lock_for_a_day(app, user_id: int):
    """Three locks earlier this week, then a fourth: 24 hours."""
    with app.test_request_context("/"):
        assert current_app
        for _ in range(3):
            audit.record("account_locked", user_id=user_id, outcome="locked", detail={})
        user = db.session.get(User, user_id)
        limits.lock_account(user)
        db.session.commit()
        until = user.locked_until
        assert until - clock.now() > timedelta(hours=23)
        return until


def _day(app, moment) -> str:
    return clock.local(moment, app.config["PORTAL_TIMEZONE"]).strftime("%-d %b")


def test_a_lock_that_ends_tomorrow_says_which_day_it_ends(app, client_id, staff):
    until = _lock_for_a_day(app, client_id)
    hhmm = clock.hhmm(until, app.config["PORTAL_TIMEZONE"])

    front = staff.text("/support")
    said = re.search(r"Locked until ([^:]*\d\d:\d\d[^.<]*)", front)
    assert said, front
    assert _day(app, until) in said.group(1), said.group(1)

    page = staff.text(f"/support/clients/{client_id}")
    said = re.search(r"Locked until ([^<]*)\.", page)
    assert said and hhmm in said.group(1), page
    assert _day(app, until) in said.group(1), said.group(1)


def test_a_lock_that_ends_the_same_day_stays_short(app, client_id, staff):
    with app.test_request_context("/"):
        user = db.session.get(User, client_id)
        limits.lock_account(user)  # the first: 15 minutes
        db.session.commit()
        until = user.locked_until
    same_day = _day(app, until) == _day(app, clock.now())
    page = staff.text(f"/support/clients/{client_id}")
    said = re.search(r"Locked until ([^<]*)\.", page)
    assert said, page
    if same_day:
        assert said.group(1) == clock.hhmm(until, app.config["PORTAL_TIMEZONE"])
