"""`flask --app app db upgrade`, the guide's first command, when the database cannot be
reached: a message saying what to check, exit code 1, no traceback, no password."""

from __future__ import annotations

import pytest

from tests.production.conftest import flask_cli


@pytest.mark.parametrize("url, check", [
    ("postgresql://clientgate:pg-password-0123@127.0.0.1:1/clientgate", "PostgreSQL is running"),
    ("sqlite:////nonexistent-folder/clientgate/clientgate.db", "SQLite file's folder exists"),
])
def test_db_upgrade_on_a_database_it_cannot_reach_says_what_to_check(url, check):
    result = flask_cli("db", "upgrade", database_url=url, check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "pg-password-0123" not in output
    assert "Cannot reach the database" in output and check in output, output


def test_db_upgrade_still_upgrades_and_its_other_commands_remain(databases):
    url = databases.new()
    assert "Running upgrade" in flask_cli("db", "upgrade", database_url=url).stderr
    assert flask_cli("db", "current", database_url=url).returncode == 0
    assert "upgrade" in flask_cli("db", "--help", database_url=url).stdout
