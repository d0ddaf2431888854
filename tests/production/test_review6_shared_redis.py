"""Review 6: two ClientGates on one Redis (a host serving several firms, or a staging copy
beside production, each with its own SECRET_KEY and database) must not count each other's
requests. The per-address limits were stored under the client's address itself, and the
per-account ones under the account's row id (`user:1` is a different person in each
database), so one install's clients used up another's limits."""

from __future__ import annotations

import secrets

from flask import session

from app import create_app
from extensions import db
from services.signin import limits
from tests.conftest import Browser, make_config, reset_schema


def install(tmp_path, databases, redis_server, name: str):
    """One ClientGate of its own (key, database), its limits counted in the shared Redis."""
    app = create_app(make_config(
        tmp_path, SQLALCHEMY_DATABASE_URI=databases.new(), SECRET_KEY=f"{name}-" + "k" * 40,
        RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI=redis_server.url,
        RATE_LIMITS={"login_per_ip": "2 per hour"}))
    reset_schema(app)
    return app


def wrong_password_from(app, address: str) -> int:
    browser = Browser(app)
    browser.client.environ_base["REMOTE_ADDR"] = address
    return browser.log_in(f"nobody-{secrets.token_hex(4)}@example.com", "wrong").status_code


def dispose(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_another_install_on_the_same_redis_does_not_use_up_this_ones_limits(
        tmp_path, databases, redis_server):
    address = f"198.51.100.{secrets.randbelow(250) + 1}"  # an address no other test counts
    first = install(tmp_path / "first", databases, redis_server, "first")
    # The other firm's office (or the staging copy) reaches its own limit from this address.
    assert [wrong_password_from(first, address) for _ in range(3)] == [200, 200, 429]
    dispose(first)
    # The limiter is one object per process: the second install binds it as its own worker
    # would, to the same Redis.
    second = install(tmp_path / "second", databases, redis_server, "second")
    assert wrong_password_from(second, address) == 200, "counted with the other install"
    dispose(second)


def test_an_accounts_limits_are_kept_apart_from_the_same_row_in_another_install(
        tmp_path, databases, redis_server):
    keys = []
    for name in ("first", "second"):
        app = install(tmp_path / name, databases, redis_server, name)
        with app.test_request_context("/login/code", method="POST"):
            session["signin_id"], session["signin_user"] = 1, 1  # row 1 of each database
            keys.append(limits.account_key_from_sign_in())
        dispose(app)
    assert keys[0] != keys[1]
