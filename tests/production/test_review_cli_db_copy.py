"""db-copy as an operator mistypes it: a SQLite --from that is not there, a URL with a port
that is no number. A message saying what to do, nothing created, no password shown."""

from __future__ import annotations

from tests.production.conftest import flask_cli


def test_a_sqlite_source_that_is_not_there_is_named_and_not_created(databases, tmp_path):
    target = databases.new()
    flask_cli("db", "upgrade", database_url=target)
    # Three slashes instead of four: a path relative to the program's folder.
    missing = tmp_path / "var" / "lib" / "clientgate.db"
    missing.parent.mkdir(parents=True)
    result = flask_cli("db-copy", "--from", f"sqlite:///{missing}x", database_url=target,
                       check=False)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "Traceback" not in output
    assert f"There is no SQLite database file at {missing}x" in output, output
    assert "four slashes" in output
    assert not (tmp_path / "var" / "lib" / "clientgate.dbx").exists()


def test_a_url_with_a_port_that_is_no_number_is_a_message_without_its_password(databases):
    target = databases.new()
    for args in (("--from", "postgresql://clientgate:s3cret-pw@db.example:port/cg"),
                 ("--from", "sqlite://", "--to", "postgresql://cg:s3cret-pw@db:54x32/cg")):
        result = flask_cli("db-copy", *args, database_url=target, check=False)
        output = result.stdout + result.stderr
        assert result.returncode == 1, output
        assert "Traceback" not in output
        assert "is not a database URL" in output, output
        assert "s3cret-pw" not in output
