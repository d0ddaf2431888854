"""`flask db-copy`: every row from a SQLite database into an empty one of this run's kind."""

from __future__ import annotations

import re
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app import create_app
from extensions import db
from models import DispatcherBeat, PhoneProof, User
from services import clock
from services.data_copy import make_engine
from tests.conftest import Browser, add_user, make_config
from tests.production.conftest import flask_cli


def rows_of(url: str) -> dict[str, list[dict]]:
    """Every row of every table, ordered by primary key, as the models read them."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {table.name: [dict(row) for row in conn.execute(
                select(table).order_by(*table.primary_key.columns)).mappings()]
                for table in db.metadata.sorted_tables}
    finally:
        engine.dispose()


def close(app) -> None:
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture(scope="module")
def migrated_sqlite(tmp_path_factory) -> Path:
    """An empty SQLite database that `flask db upgrade` made once; tests take copies of it."""
    path = tmp_path_factory.mktemp("migrated") / "empty.db"
    flask_cli("db", "upgrade", database_url=f"sqlite:///{path}")
    return path


@pytest.fixture
def migrated_target(databases, migrated_sqlite) -> str:
    """A new, empty database of this run's kind at the newest schema, as `flask db upgrade`
    leaves it (on SQLite, a copy of the one it made for this module)."""
    url = databases.new()
    if url.startswith("sqlite:///"):
        shutil.copyfile(migrated_sqlite, url.removeprefix("sqlite:///"))
    else:
        flask_cli("db", "upgrade", database_url=url)
    return url


@pytest.fixture
def source(tmp_path, smtp, migrated_sqlite):
    """A migrated SQLite database with a little of everything in it, written by the app."""
    shutil.copyfile(migrated_sqlite, tmp_path / "old.db")
    url = f"sqlite:///{tmp_path}/old.db"
    app = create_app(make_config(tmp_path, smtp, SQLALCHEMY_DATABASE_URI=url))
    add_user(app, "client@example.com")
    add_user(app, "mobile@example.com", channel="sms", phone="+447400123456")
    browser = Browser(app)
    assert browser.log_in().status_code == 302
    assert browser.log_in().status_code == 302  # supersedes the first: a link to a later row
    with app.app_context():
        from services import delivery

        delivery.run_once()
        user_id = db.session.scalar(select(User.id).where(User.email == "mobile@example.com"))
        db.session.add(PhoneProof(user_id=user_id, phone="+447400123457", code_hash="0" * 64,
                                  expires_at=clock.now() + timedelta(minutes=10)))
        # The app was stopped an hour ago.
        db.session.add(DispatcherBeat(worker="old:1", beat_at=clock.now() - timedelta(hours=1)))
        db.session.commit()
    smtp.wait_for(1)
    assert browser.enter_code(smtp.last_to("client@example.com").code).status_code == 302
    close(app)
    return url


def copy(target_app, *args):
    return target_app.test_cli_runner().invoke(args=["db-copy", *args])


def test_copy_moves_every_row_and_new_rows_follow_on(source, migrated_target, tmp_path, smtp):
    target = migrated_target
    before = rows_of(source)
    assert all(before[name] for name in ("users", "sign_ins", "deliveries", "events",
                                         "auth_sessions", "phone_proofs", "dispatcher_beats"))
    assert any(row["superseded_by_id"] for row in before["sign_ins"])

    app = create_app(make_config(tmp_path, smtp, SQLALCHEMY_DATABASE_URI=target))
    result = copy(app, "--from", source)
    assert result.exit_code == 0, result.output
    assert re.search(rf"^\s*users\s+{len(before['users'])} rows$", result.output, re.M)
    assert f"Done: {sum(map(len, before.values()))} rows in {len(before)} tables" in result.output
    assert rows_of(target) == before  # ids, times (aware UTC), JSON, links: all the same

    # New rows get new ids (PostgreSQL's sequences were moved past the copied ones).
    new_id = add_user(app, "new@example.com")
    assert new_id == max(row["id"] for row in before["users"]) + 1
    assert Browser(app).log_in("new@example.com").status_code == 302

    # The copied client can still sign in: their password and sessions came across.
    assert Browser(app).log_in("client@example.com").status_code == 302
    close(app)


def test_copy_refuses_a_target_that_is_not_empty(source, migrated_target, tmp_path):
    target = migrated_target
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=target))
    add_user(app, "already@example.com")
    result = copy(app, "--from", source)
    assert result.exit_code == 1
    assert "already has rows in: users" in result.output
    assert [row["email"] for row in rows_of(target)["users"]] == ["already@example.com"]
    close(app)


def test_copy_refuses_a_target_without_the_schema(source, databases, tmp_path):
    target = databases.new()
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=target))
    result = copy(app, "--from", source)
    assert result.exit_code == 1 and "flask --app app db upgrade" in result.output
    close(app)


def test_copy_refuses_another_schema_revision(source, migrated_target, tmp_path):
    target = migrated_target
    engine = make_engine(target)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'abc123'"))
    engine.dispose()
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=target))
    result = copy(app, "--from", source)
    assert result.exit_code == 1 and "target at abc123" in result.output
    close(app)


def test_copy_refuses_while_the_app_runs_on_the_source(source, migrated_target, tmp_path):
    engine = make_engine(source)
    with engine.begin() as conn:
        conn.execute(DispatcherBeat.__table__.insert().values(worker="live:2", beat_at=clock.now()))
    engine.dispose()
    target = migrated_target
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=target))
    result = copy(app, "--from", source)
    assert result.exit_code == 1 and "still seems to be running" in result.output
    assert not rows_of(target)["users"]
    assert copy(app, "--from", source, "--even-if-running").exit_code == 0
    close(app)


def test_a_failed_copy_writes_nothing(source, migrated_target, tmp_path):
    """A row the target cannot take (an event of a user who does not exist, left by an old
    SQLite file that did not check its links) stops the copy; the target stays empty."""
    import sqlite3

    raw = sqlite3.connect(source.removeprefix("sqlite:///"))
    raw.execute("PRAGMA foreign_keys = OFF")
    raw.execute("UPDATE events SET user_id = 9999 WHERE id = (SELECT MAX(id) FROM events)")
    raw.commit()
    raw.close()
    target = migrated_target
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=target))
    result = copy(app, "--from", source)
    assert result.exit_code == 1 and "nothing was written" in result.output, result.output
    assert all(not rows for rows in rows_of(target).values())
    close(app)
