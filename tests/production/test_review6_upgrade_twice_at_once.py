"""Two servers started at once, each running `flask db upgrade` on the same new database (the
guide's systemd unit runs it before every start): the second one failed now and then on
PostgreSQL ("duplicate key value violates unique constraint pg_type_typname_nsp_index"), so
that server did not start. It now waits for the first, then finds nothing to do."""

from __future__ import annotations

from sqlalchemy import create_engine, inspect, text

from tests.conftest import at_once
from tests.production.conftest import flask_cli


def test_three_upgrades_of_one_new_database_at_once_all_succeed(databases):
    url = databases.new()
    results = at_once(*(lambda: flask_cli("db", "upgrade", database_url=url, check=False)
                        for _ in range(3)), timeout=180)
    for result in results:
        assert result.returncode == 0, result.stdout + result.stderr
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).all()
            assert len(versions) == 1
            assert "users" in inspect(connection).get_table_names()
    finally:
        engine.dispose()
