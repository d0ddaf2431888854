"""Claims and locks: two dispatchers never share a message; SQLite waits instead of failing."""

from __future__ import annotations

import threading
from functools import partial

from sqlalchemy import select, text

from app import create_app
from extensions import db
from models import Delivery, User
from services import delivery
from tests.conftest import add_user, at_once, make_config, reset_schema


def queue_notices(app, count: int) -> list[int]:
    with app.app_context():
        ids = [delivery.queue_message(
            user_id=None, channel="email", destination=f"n{i}@example.com", kind="notice",
            template="security_change", values={"when": "10:05", "change": "test"},
        ).id for i in range(count)]
        db.session.commit()
        db.session.remove()
        return ids


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_two_dispatchers_claiming_at_once_never_share_a_message(tmp_path, databases):
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=databases.new()))
    reset_schema(app)
    ids = queue_notices(app, 40)
    start = threading.Barrier(2)
    claimed: dict[str, list[int]] = {}

    def claim(worker: str) -> None:
        with app.app_context():
            start.wait(timeout=30)
            claimed[worker] = delivery.claim_due(limit=len(ids), worker=worker)
            db.session.remove()

    at_once(*(partial(claim, name) for name in ("a", "b")), timeout=60)

    assert not set(claimed["a"]) & set(claimed["b"]), "one message claimed by both"
    assert sorted(claimed["a"] + claimed["b"]) == sorted(ids), "a message was not claimed"
    with app.app_context():
        owners = dict(db.session.execute(select(Delivery.id, Delivery.claimed_by)).all())
    assert all(owners[i] == "a" for i in claimed["a"])
    assert all(owners[i] == "b" for i in claimed["b"])
    dispose(app)


# --- SQLite (on every run: most firms run it) ------------------------------------------

def sqlite_app(tmp_path):
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=f"sqlite:///{tmp_path}/w.db"))
    reset_schema(app)
    return app


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout_and_foreign_keys(tmp_path):
    app = sqlite_app(tmp_path)
    with app.app_context():
        assert db.session.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert db.session.execute(text("PRAGMA busy_timeout")).scalar() == 15000
        assert db.session.execute(text("PRAGMA foreign_keys")).scalar() == 1
    dispose(app)


def test_sqlite_read_then_write_survives_a_write_in_between(tmp_path):
    """The pattern of every request: read, then write. Another worker wrote meanwhile."""
    app = sqlite_app(tmp_path)
    add_user(app, "a@example.com")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "a@example.com"))
        with app.app_context():  # another worker, with its own connection
            add_user(app, "b@example.com")
        user.lockout_count = 1  # would fail at once with "database is locked" (stale snapshot)
        db.session.commit()
        assert db.session.scalar(select(User.lockout_count).where(User.id == user.id)) == 1
    dispose(app)


def test_sqlite_select_for_update_holds_off_other_writers(tmp_path):
    """with_for_update() locks on SQLite as on PostgreSQL: read, decide, write, atomically."""
    app = sqlite_app(tmp_path)
    user_id = add_user(app)
    order: list[str] = []
    other_started = threading.Event()

    def other_writer() -> None:
        with app.app_context():
            other_started.set()
            db.session.execute(text("UPDATE users SET lockout_count = 7"))
            db.session.commit()
            order.append("other wrote")
            db.session.remove()

    with app.app_context():
        db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
        thread = threading.Thread(target=other_writer)
        thread.start()
        other_started.wait(10)
        thread.join(0.5)  # it must be waiting for our lock, so it cannot have written
        order.append("locker committed")
        db.session.commit()
    thread.join(30)
    assert order == ["locker committed", "other wrote"]
    dispose(app)


# --- codes typed at the same moment ----------------------------------------------------

def judge_at_once(app, sign_in_id: int, typed: list[str]) -> list[str]:
    """Check each typed code for the sign-in in its own thread, all at the same moment."""
    from models import SignIn
    from services.signin import codes

    start = threading.Barrier(len(typed))
    outcomes: list[str] = []

    def judge(code: str) -> None:
        with app.app_context():
            sign_in = db.session.get(SignIn, sign_in_id)
            start.wait(timeout=30)
            outcomes.append(codes.check_code(sign_in, code).outcome)
            db.session.commit()
            db.session.remove()

    at_once(*(partial(judge, code) for code in typed), timeout=60)
    return sorted(outcomes)


def started_sign_in(tmp_path, databases, smtp):
    from models import SignIn
    from tests.conftest import Browser

    app = create_app(make_config(tmp_path, smtp, SQLALCHEMY_DATABASE_URI=databases.new()))
    reset_schema(app)
    add_user(app)
    assert Browser(app).log_in().status_code == 302
    with app.app_context():
        delivery.run_once()
        sign_in_id = db.session.scalar(select(SignIn.id))
    return app, sign_in_id, smtp.wait_for(1)[0].code


def test_the_right_code_typed_twice_at_once_signs_in_once(tmp_path, databases, smtp):
    app, sign_in_id, code = started_sign_in(tmp_path, databases, smtp)
    assert judge_at_once(app, sign_in_id, [code] * 4) == ["accepted", "used", "used", "used"]
    dispose(app)


def test_wrong_codes_typed_at_once_all_count(tmp_path, databases, smtp):
    from models import SignIn

    app, sign_in_id, code = started_sign_in(tmp_path, databases, smtp)
    wrong = [f"{(int(code) + n) % 1000000:06d}" for n in range(1, 9)]
    outcomes = judge_at_once(app, sign_in_id, wrong)
    assert outcomes.count("wrong") == 4 and outcomes.count("locked") == 4, outcomes
    with app.app_context():
        sign_in = db.session.get(SignIn, sign_in_id)
        assert (sign_in.failed_attempts, sign_in.status) == (5, "locked")
    dispose(app)


def test_sign_ins_of_one_client_at_once_leave_one_pending(tmp_path, databases):
    """As the login route does it: record the password check, check the caps (which locks
    the account's row), then start the sign-in.
    (On PostgreSQL the event's link to the user takes a share lock on the user's row; the
    sign-in's own lock must not deadlock with it.)"""
    from models import SignIn
    from services import audit
    from services.signin import codes, limits

    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=databases.new()))
    reset_schema(app)
    user_id = add_user(app)
    start = threading.Barrier(6)
    errors: list[Exception] = []

    def sign_in() -> None:
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                # On SQLite the flush takes the write lock, so all meet before it instead.
                postgres = db.engine.dialect.name == "postgresql"
                if not postgres:
                    start.wait(timeout=30)
                audit.record("password_ok", user_id=user_id, outcome="ok")
                db.session.flush()
                if postgres:
                    start.wait(timeout=30)
                assert limits.refuse_new_code(user, "127.0.0.1") is None  # takes the lock
                codes.start_sign_in(user)
                db.session.commit()
            except Exception as exc:  # reported below: no error may reach a client
                errors.append(exc)
            finally:
                db.session.remove()

    at_once(*(sign_in for _ in range(6)), timeout=60)
    assert errors == []
    with app.app_context():
        statuses = sorted(db.session.scalars(select(SignIn.status)).all())
    assert statuses == ["pending"] + ["superseded"] * 5
    dispose(app)
