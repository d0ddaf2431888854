"""Review 6: the order in which a wrong code and a new sign-in of one account take their locks.

A wrong code locked its sign-in's row (codes.lock_sign_in), then the account's row to count the
failure (limits.note_failure). The right password locks the account's row (limits' caps), then
ends the account's pending sign-ins (codes.start_sign_in), which needs the sign-in's row. Two
servers doing both at once for one client take the same two locks in opposite orders, and
PostgreSQL ended one of them as a deadlock: a 500 for that client, and when it was the code
post, its wrong code was not counted. codes.lock_sign_in now holds the account's row before the
sign-in's, the order every other path uses.
"""

from __future__ import annotations

import threading

import pytest

from app import create_app
from extensions import db
from models import SignIn, User
from services.signin import codes, limits
from tests.conftest import add_user, at_once, make_config, reset_schema


def test_a_wrong_code_and_a_new_sign_in_at_once_both_finish(tmp_path, databases):
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=databases.new()))
    reset_schema(app)
    user_id = add_user(app)
    with app.app_context():
        first = codes.start_sign_in(db.session.get(User, user_id))
        db.session.commit()
        sign_in_id = first.id
        db.session.remove()
    # Each takes its first lock, then waits (a while at most) until the other has taken its
    # own, so that both then ask for their second lock together. On SQLite the first lock is
    # the database's write lock, and with the locks in one order the other is waiting for its
    # first: then each goes on when the wait is over.
    holding = {"code": threading.Event(), "password": threading.Event()}

    def hold_then_wait(mine: str, other: str) -> None:
        holding[mine].set()
        holding[other].wait(timeout=5)
    errors: list[BaseException] = []

    def wrong_code() -> None:
        with app.app_context():
            try:
                sign_in = codes.lock_sign_in(sign_in_id)
                hold_then_wait("code", "password")
                check = codes.check_code(sign_in, "000000" if sign_in.code_hash else "1",
                                         locked=True)
                limits.note_failure(sign_in.user)
                db.session.commit()
                assert check.outcome in (codes.WRONG, codes.SUPERSEDED, codes.EXPIRED)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    def new_sign_in() -> None:
        with app.app_context():
            try:
                user = db.session.get(User, user_id)
                assert limits.refuse_new_code(user, "127.0.0.1") is None  # the account's lock
                hold_then_wait("password", "code")
                codes.start_sign_in(user)
                db.session.commit()
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    at_once(wrong_code, new_sign_in, timeout=60)
    assert not errors, f"a request failed: {errors!r}"
    with app.app_context():
        assert db.session.get(SignIn, sign_in_id).status == "superseded"
        db.session.remove()
        db.engine.dispose()
