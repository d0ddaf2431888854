"""`flask prune` forgets old history; the client page does a fixed number of queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import delete, event, func, select

from extensions import db
from models import AuthSession, Delivery, Event, SignIn, User
from services import clock, support
from services.signin import codes
from services.support import retention
from tests.support.conftest import CLIENT, start


def count(app, model, *where) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model).where(*where))


def invoke(app, *args):
    return app.test_cli_runner().invoke(args=list(args))


def test_prune_deletes_history_older_than_the_retention(app, client_id, smtp, deliver, sign_in,
                                                        phone):
    old_browser = sign_in(CLIENT)  # an old sign-in, its session, events and message
    old_browser.post("/logout", form_page="/portal")
    with app.app_context():
        # Two notices tied to no sign-in: one sent long ago, one somehow still waiting.
        for status in ("sent", "queued"):
            db.session.add(Delivery(user_id=client_id, kind="notice", channel="email",
                                    destination=CLIENT, status=status, created_at=clock.now(),
                                    next_attempt_at=clock.now() + timedelta(days=365)))
        db.session.commit()
    old_ids = {s for s in db_ids(app, SignIn)}

    clock.advance(timedelta(days=91))
    code = start(phone, smtp, deliver)
    assert phone.enter_code(code).status_code == 302

    result = invoke(app, "prune")
    assert result.exit_code == 0, result.output
    assert "older than 90 days" in result.output and "1 sign-ins" in result.output

    assert not old_ids & set(db_ids(app, SignIn))
    assert count(app, SignIn) == 1
    cutoff = clock.now() - timedelta(days=90)
    assert count(app, Event, Event.created_at < cutoff) == 0
    assert count(app, Event) > 0  # today's events stay
    # Finished messages went; the one never sent stays, to be sent or given up on.
    assert count(app, Delivery, Delivery.created_at < cutoff) == 1
    assert count(app, Delivery, Delivery.status == "queued") == 1
    assert count(app, Delivery) == 2
    assert count(app, AuthSession) == 1  # the logged-out one went, today's stays
    assert count(app, User) == 1  # people are never pruned


def db_ids(app, model) -> list[int]:
    with app.app_context():
        return list(db.session.scalars(select(model.id)))


def test_prune_days_option_and_bad_values(app, client_id, smtp, deliver, phone):
    start(phone, smtp, deliver)
    clock.advance(timedelta(days=10))
    assert invoke(app, "prune").exit_code == 0
    assert count(app, SignIn) == 1  # within the default 90 days

    result = invoke(app, "prune", "--days", "7")
    assert result.exit_code == 0, result.output
    assert count(app, SignIn) == 0

    for bad in ("0", "-3", "seven"):
        result = invoke(app, "prune", "--days", bad)
        assert result.exit_code == 2 and "--days" in result.output


def test_prune_follows_retention_days_config(app, client_id, smtp, deliver, phone):
    start(phone, smtp, deliver)
    clock.advance(timedelta(days=31))
    app.config["RETENTION_DAYS"] = 30
    assert invoke(app, "prune").exit_code == 0
    assert count(app, SignIn) == 0


def test_prune_keeps_a_sign_in_referenced_by_a_newer_one_consistent(app, client_id, smtp,
                                                                    deliver, phone):
    start(phone, smtp, deliver)
    clock.advance(timedelta(days=8))
    start(phone, smtp, deliver)
    with app.app_context():
        result = retention.prune(7, batch=1)
        db.session.commit()
    assert result.sign_ins == 1 and count(app, SignIn) == 1


def test_prune_refuses_nonsense_days(app):
    with app.app_context(), pytest.raises(ValueError):
        retention.prune(0)


def test_prune_keeps_what_account_locks_remember(app):
    """Locks grow with the locks of the last week, read from the audit trail: keeping less
    would reset every guesser to the first, shortest lock (a review's finding, with a
    daily `prune --days 1`)."""
    from services.signin.limits import LOCK_MEMORY

    assert timedelta(days=retention.MIN_DAYS) >= LOCK_MEMORY
    with app.app_context(), pytest.raises(ValueError):
        retention.prune(retention.MIN_DAYS - 1)
    result = invoke(app, "prune", "--days", str(retention.MIN_DAYS - 1))
    assert result.exit_code == 2 and "--days" in result.output
    app.config["RETENTION_DAYS"] = 1
    result = invoke(app, "prune")
    assert result.exit_code != 0 and "at least 7" in result.output


# --- the client page stays fast: a fixed number of queries, whatever the history -----------

def queries_for(app, staff, path) -> int:
    statements = []

    def note(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", note)
    try:
        assert staff.get(path).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", note)
    return len(statements)


def make_sign_ins(app, user_id: int, n: int) -> None:
    with app.app_context():
        client = db.session.get(User, user_id)
        for _ in range(n):
            sign_in = codes.start_sign_in(client, ip="127.0.0.1", user_agent="test")
            db.session.commit()
            codes.check_code(sign_in, "000000")
            db.session.commit()
            clock.advance(timedelta(seconds=1))


def test_client_page_queries_do_not_grow_with_history(app, client_id, staff):
    make_sign_ins(app, client_id, 3)
    few = queries_for(app, staff, f"/support/clients/{client_id}")
    make_sign_ins(app, client_id, 40)
    many = queries_for(app, staff, f"/support/clients/{client_id}")
    assert many == few
    assert many <= 12


def test_client_page_shows_twenty_and_pages_back(app, client_id, staff):
    make_sign_ins(app, client_id, 45)
    with app.app_context():
        ids = list(db.session.scalars(select(SignIn.id).order_by(SignIn.created_at.desc())))
    page = staff.text(f"/support/clients/{client_id}")
    assert page.count('class="card signin') == support.PAGE_SIZE
    assert f'id="sign-in-{ids[0]}"' in page and f'id="sign-in-{ids[20]}"' not in page
    assert f"before={ids[19]}" in page

    page = staff.text(f"/support/clients/{client_id}?before={ids[19]}")
    assert f'id="sign-in-{ids[20]}"' in page and f'id="sign-in-{ids[39]}"' in page
    assert f'id="sign-in-{ids[19]}"' not in page
    page = staff.text(f"/support/clients/{client_id}?before={ids[39]}")
    assert page.count('class="card signin') == 5 and "Older sign-ins" not in page
    assert "Newest sign-ins" in page


def test_timeline_uses_its_index(app, client_id):
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("the plan is checked on SQLite")
        plan = db.session.execute(db.text(
            "EXPLAIN QUERY PLAN SELECT id FROM sign_ins WHERE user_id = 1 "
            "ORDER BY created_at DESC, id DESC LIMIT 21")).all()
    detail = " ".join(str(row[-1]) for row in plan)
    assert "ix_sign_ins_user_created" in detail


def test_prune_forgets_heartbeats_of_workers_long_gone(app):
    from models import DispatcherBeat

    with app.app_context():
        db.session.add(DispatcherBeat(worker="old:1", beat_at=clock.now() - timedelta(days=100)))
        db.session.add(DispatcherBeat(worker="live:2", beat_at=clock.now()))
        db.session.commit()
        retention.prune(90)
        assert db.session.scalars(select(DispatcherBeat.worker)).all() == ["live:2"]



def test_prune_counts_what_it_deleted_not_what_another_prune_deleted_first(app, client_id,
                                                                         smtp, deliver, phone):
    """Two servers' timers may prune at once. Each counted every row it found as deleted, so
    together they printed twice what went."""
    start(phone, smtp, deliver)
    clock.advance(timedelta(days=91))
    batches_before = retention._batches_before

    def another_prune_deletes_each_batch_first(model, cutoff, batch):
        for ids in batches_before(model, cutoff, batch):
            with app.app_context():  # the other server, on the same database
                db.session.execute(delete(Event).where(Event.sign_in_id.in_(ids)))
                db.session.execute(delete(Delivery).where(Delivery.sign_in_id.in_(ids)))
                db.session.execute(delete(model).where(model.id.in_(ids)))
                db.session.commit()
                db.session.remove()
            yield ids

    with app.app_context():
        retention._batches_before = another_prune_deletes_each_batch_first
        try:
            result = retention.prune(90)
        finally:
            retention._batches_before = batches_before
    assert (result.sign_ins, result.events, result.deliveries) == (0, 0, 0)
    assert count(app, SignIn) == 0 and count(app, Event) == 0
