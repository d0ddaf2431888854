"""Fixtures for the security tests: request limits switched on, argon2 counted, the database seen whole."""

from __future__ import annotations

import argon2
import pytest
from sqlalchemy import select

from extensions import db, limiter
from tests.conftest import Browser


@pytest.fixture
def limits_on(app):
    """Switch Flask-Limiter on for this test's app, with the given limits (conftest turns it off).

    Limits not given keep their defaults from services.signin.limits.DEFAULT_RATE_LIMITS.
    """

    def turn_on(**rate_limits: str):
        app.config["RATELIMIT_ENABLED"] = True
        app.config["RATE_LIMITS"] = rate_limits
        limiter.init_app(app)  # fresh memory storage, and the limiter's request hooks
        return app

    return turn_on


@pytest.fixture
def from_ip(app):
    """A browser whose requests come from the given address."""

    def make(address: str) -> Browser:
        b = Browser(app)
        b.client.environ_base["REMOTE_ADDR"] = address
        return b

    return make


@pytest.fixture
def argon2_calls(monkeypatch):
    """Count argon2 verifications and hashes, the costly part of a password check."""
    calls = {"verify": 0, "hash": 0}
    verify, hash_ = argon2.PasswordHasher.verify, argon2.PasswordHasher.hash

    def counting_verify(self, *args, **kwargs):
        calls["verify"] += 1
        return verify(self, *args, **kwargs)

    def counting_hash(self, *args, **kwargs):
        calls["hash"] += 1
        return hash_(self, *args, **kwargs)

    monkeypatch.setattr(argon2.PasswordHasher, "verify", counting_verify)
    monkeypatch.setattr(argon2.PasswordHasher, "hash", counting_hash)
    return calls


def table_rows(app) -> dict[str, list[tuple]]:
    """Every row of every table, in primary-key order: what "no data changed" is checked against."""
    with app.app_context():
        rows = {}
        for table in db.metadata.sorted_tables:
            order = list(table.primary_key.columns) or list(table.columns)
            rows[table.name] = [tuple(row) for row in db.session.execute(
                select(table).order_by(*order)).all()]
        db.session.remove()
        return rows


@pytest.fixture
def db_rows(app):
    """A function returning every row of every table of this test's database."""
    return lambda: table_rows(app)
