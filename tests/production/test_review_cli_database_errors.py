"""The operator's commands on a database that is not there, not migrated, or not answering:
one line saying what to do and a non-zero exit code, never a Python traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.production.conftest import ROOT, flask_cli, production_env

PASSWORD = "a long enough password for the review"

# What the README tells the operator to run, each needing the database's tables.
COMMANDS = [
    ("users", "list"),
    ("users", "add", "new@example.com", "--password-stdin"),
    ("users", "invite", "new@example.com"),
    ("users", "unlock", "new@example.com"),
    ("users", "set-role", "new@example.com", "admin"),
    ("users", "deactivate", "new@example.com"),
    ("oidc", "list-clients"),
    ("oidc", "add-client", "Nextcloud", "--redirect-uri", "https://cloud.example.com/cb"),
    ("oidc", "rotate-key"),
    ("prune",),
]


def _run(args, database_url):
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
        env=production_env(database_url), input=PASSWORD + "\n", capture_output=True,
        text=True, timeout=180,
    )


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a[:2]))
def test_a_database_without_tables_is_named_with_the_upgrade_command(databases, args):
    result = _run(args, databases.new())
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "db upgrade" in output, output


@pytest.mark.parametrize("args", COMMANDS[:2] + COMMANDS[6:7] + COMMANDS[9:],
                         ids=lambda a: " ".join(a[:2]))
def test_a_postgresql_server_that_does_not_answer_is_a_message(args):
    # Port 1: nothing listens there, as when PostgreSQL is stopped.
    result = _run(args, "postgresql://clientgate:pg-password-0123@127.0.0.1:1/clientgate")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "pg-password-0123" not in output
    assert "cannot reach the database" in output.lower(), output
    assert "postgresql" in output.lower()


def test_a_sqlite_file_that_cannot_be_opened_is_a_message(tmp_path):
    result = _run(("users", "list"), f"sqlite:///{tmp_path}/no/such/folder/clientgate.db")
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert "cannot reach the database" in output.lower(), output


def test_the_same_commands_work_once_the_database_is_upgraded(databases):
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    assert _run(("users", "list"), url).returncode == 0
    assert _run(("prune",), url).returncode == 0
