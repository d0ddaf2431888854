"""`flask db upgrade` builds, from nothing, exactly the schema the models describe."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect

from config import database_url
from extensions import db
from tests.production.conftest import DATABASE_KIND, ROOT, Databases, flask_cli

import models  # noqa: F401  (the tables must be in db.metadata)

KINDS = [DATABASE_KIND]  # each pass of ./scripts/test.sh checks its own kind of database


def schema_of(url: str) -> tuple[set[str], list]:
    """The tables of a database, and how its schema differs from the models."""
    engine = create_engine(database_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            return set(inspect(conn).get_table_names()), compare_metadata(context, db.metadata)
    finally:
        engine.dispose()


def test_migrations_have_one_head():
    config = AlembicConfig(str(ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    assert len(ScriptDirectory.from_config(config).get_heads()) == 1


@pytest.mark.parametrize("kind", KINDS)
def test_upgrade_from_empty_matches_the_models(kind, tmp_path):
    databases = Databases(tmp_path, kind)
    url = databases.new()
    try:
        upgraded = flask_cli("db", "upgrade", database_url=url)
        # What an operator reads: the migrations it ran, not Alembic announcing its plugins.
        assert "Running upgrade" in upgraded.stderr and "setup plugin" not in upgraded.stderr
        tables, differences = schema_of(url)
        assert set(db.metadata.tables) <= tables
        assert differences == [], "the migrations and models.py disagree; add a migration"

        flask_cli("db", "downgrade", "base", database_url=url)
        assert schema_of(url)[0] <= {"alembic_version"}
        flask_cli("db", "upgrade", database_url=url)  # and back, as an upgrade would
        assert schema_of(url)[1] == []
    finally:
        databases.drop_all()
