"""The firm's backups restore (seventh review): docs/bin/clientgate-backup as the operator's
guide installs it (section 9), run while a real `gunicorn 'app:create_app()'` serves sign-ins,
then the guide's restore steps, literally for SQLite and adapted to the throwaway server's
superuser for PostgreSQL; after them an old client signs in end to end and support's page shows
their history, and a code that waited in the backup is not sent once its sign-in has ended.

The script itself: an env file like docs/clientgate.env.example, BACKUP_DIR, RUN_AS (this
process's user), and whatever DATABASE_URL the app itself accepts. It prints the file it made,
keeps 14 days, and when it cannot back up says so and exits non-zero, leaving no file that
looks like a backup.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import time
from datetime import timedelta
from pathlib import Path

import pytest

from tests.conftest import AS_SERVERS_HASH, TEST_PASSWORD, add_user, make_config
from tests.production.conftest import DATABASE_KIND, Gunicorn, WebClient, flask_cli, wait_until
from tests.production.review7bk_live import (AppDatabase, Busy, GreylistingSMTP,
                                              message_state, sign_in)
from tests.production.review7bk_script import (backups_in, restore_sqlite_as_the_guide_says,
                                                run_backup, sqlite_rows)

on_postgresql = pytest.mark.skipif(DATABASE_KIND != "postgresql",
                                   reason="pg_dump and pg_restore: in the PostgreSQL pass")
on_sqlite = pytest.mark.skipif(DATABASE_KIND != "sqlite", reason="SQLite's own backup")


def a_clientgate_sqlite(path: Path) -> Path:
    """A small database with ClientGate's version table, as `db upgrade` leaves one."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE alembic_version (version_num VARCHAR(32) PRIMARY KEY)")
        conn.execute("INSERT INTO alembic_version VALUES ('a9d3e6f1c284')")
    return path


# --- the script on its own -------------------------------------------------------------------

def test_no_database_at_the_sqlite_path_is_no_backup_and_says_so(tmp_path):
    """Was: sqlite3 made an empty database at the path (beside where the live one should
    be), backed that up, checked it "ok", printed its name and exited 0 every night."""
    missing = tmp_path / "lib" / "clientgate.db"
    missing.parent.mkdir()
    result = run_backup(tmp_path, f"sqlite:///{missing}")
    assert result.returncode != 0, result.stdout
    assert "no database" in result.stderr and str(missing) in result.stderr, result.stderr
    assert result.stdout == ""
    assert backups_in(tmp_path / "backups") == []
    assert not missing.exists(), "the backup made an empty database where the live one goes"


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_a_backup_that_fails_leaves_no_file_named_like_a_backup(tmp_path, kind):
    """Was: a 0-byte clientgate-DATE.db (a file that is not a database) or .dump (a server
    that does not answer) stayed in the backups folder, looking like the night's copy."""
    if kind == "sqlite":
        junk = tmp_path / "clientgate.db"
        junk.write_bytes(os.urandom(5000))
        url = f"sqlite:///{junk}"
    else:
        url = "postgresql://clientgate@127.0.0.1:1/clientgate"  # nobody listens on port 1
    result = run_backup(tmp_path, url)
    assert result.returncode != 0
    assert backups_in(tmp_path / "backups") == []
    assert "no backup made" in result.stderr, result.stderr


def fake_pg_dump(folder: Path) -> Path:
    """A pg_dump that writes down how it was called and makes a small file."""
    folder.mkdir(exist_ok=True)
    tool = folder / "pg_dump"
    tool.write_text('#!/bin/sh\nprintf "%s\\n" "$@" > "$CALLED"\n'
                    'printf "%s" "${PGPASSWORD-unset}" > "$CALLED.password"\n'
                    'for a; do case $a in --file=*) echo dump > "${a#--file=}";; esac; done\n')
    tool.chmod(0o755)
    return folder


def test_a_postgresql_url_in_sqlalchemys_form_with_a_password_is_backed_up_without_showing_it(
        tmp_path):
    """The app takes postgresql+psycopg:// as well as postgresql:// (config.database_url).
    Was: the script refused the first ("must start with ... postgresql://"), and put the
    second, password and all, on pg_dump's command line, which every user of the server can
    read (ps, /proc/PID/cmdline) while the dump runs."""
    called = tmp_path / "called"
    url = ("postgresql+psycopg://clientgate:p%40ss%3Aw%2Frd@db.internal:5433/clientgate"
           "?sslmode=verify-full")
    result = run_backup(tmp_path, url, extra_path=fake_pg_dump(tmp_path / "fake"),
                        CALLED=str(called))
    assert result.returncode == 0, result.stderr
    made = backups_in(tmp_path / "backups")
    assert [p.name for p in made] == [Path(result.stdout.strip()).name]
    assert made[0].suffix == ".dump"
    argv = called.read_text().splitlines()
    assert "p%40ss" not in " ".join(argv) and "p@ss" not in " ".join(argv), argv
    assert "postgresql://clientgate@db.internal:5433/clientgate?sslmode=verify-full" in argv
    assert (tmp_path / "called.password").read_text() == "p@ss:w/rd"


def test_a_sqlite_url_with_options_backs_up_the_database_it_names(tmp_path):
    """sqlite:////path?timeout=20 is a URL SQLAlchemy (so the app) reads as the file /path.
    Was: the script opened a new, empty file named "clientgate.db?timeout=20" and called its
    copy of that a backup."""
    live = a_clientgate_sqlite(tmp_path / "clientgate.db")
    result = run_backup(tmp_path, f"sqlite:///{live}?timeout=20")
    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip())
    assert sqlite_rows(copy, "SELECT version_num FROM alembic_version") == [("a9d3e6f1c284",)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("clientgate.db")) \
        == ["clientgate.db"]


def test_a_file_that_is_not_clientgates_database_is_no_backup(tmp_path):
    """A DATABASE_URL naming some other (or an empty, never upgraded) SQLite file."""
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE t (x)")
    result = run_backup(tmp_path, f"sqlite:///{other}")
    assert result.returncode != 0 and "not a ClientGate database" in result.stderr
    assert backups_in(tmp_path / "backups") == []


def test_it_prints_the_copy_keeps_fourteen_days_and_touches_nothing_else(tmp_path):
    live = a_clientgate_sqlite(tmp_path / "clientgate.db")
    backups = tmp_path / "backups"
    backups.mkdir()
    now = time.time()
    ages = {"clientgate-old.db": 16, "clientgate-older.dump": 30, "clientgate-recent.db": 13,
            "notes.txt": 40}
    for name, days in ages.items():
        (backups / name).write_text(name)
        os.utime(backups / name, (now - days * 86400, now - days * 86400))
    result = run_backup(tmp_path, f"sqlite:///{live}")
    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip())
    assert copy.parent == backups and copy.name.startswith("clientgate-")
    assert sorted(p.name for p in backups.iterdir()) == sorted(
        [copy.name, "clientgate-recent.db", "notes.txt"])


def test_unreadable_settings_or_no_backups_folder_says_so(tmp_path):
    live = a_clientgate_sqlite(tmp_path / "clientgate.db")
    result = run_backup(tmp_path, f"sqlite:///{live}", BACKUP_DIR=str(tmp_path / "none"))
    assert result.returncode != 0 and "does not exist" in result.stderr
    result = run_backup(tmp_path, f"sqlite:///{live}", ENV_FILE=str(tmp_path / "missing.env"))
    assert result.returncode != 0 and "cannot read" in result.stderr


# --- backed up while clients sign in, restored as the guide says -----------------------------

OLD, BUSY, WAITING, SUPPORT = ("old@example.com", "busy@example.com", "waiting@example.com",
                               "support@example.com")


@pytest.fixture(scope="module")
def smtp_sink():
    server = GreylistingSMTP()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def live(tmp_path_factory, smtp_sink):
    """The database as the guide lays it out, migrated, with four accounts; gunicorn on it."""
    base = tmp_path_factory.mktemp("live")
    if DATABASE_KIND == "sqlite":
        lib = base / "var-lib-clientgate"
        lib.mkdir()
        url, pg = f"sqlite:///{lib / 'clientgate.db'}", None  # four slashes: an absolute path
    else:
        pg = AppDatabase()
        url = pg.url
    try:
        flask_cli("db", "upgrade", database_url=url)
        from app import create_app
        from config import database_url
        from extensions import db

        app = create_app(make_config(base, SQLALCHEMY_DATABASE_URI=database_url(url),
                                     **AS_SERVERS_HASH))
        ids = {email: add_user(app, email) for email in (OLD, BUSY, WAITING)}
        ids[SUPPORT] = add_user(app, SUPPORT, role="support")
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
        server = Gunicorn(url, smtp_sink, base, workers=2)
        server.start()
        try:
            yield {"url": url, "base": base, "ids": ids, "server": server, "pg": pg}
        finally:
            server.stop()
    finally:
        if pg is not None:
            pg.remove()


def rows_of(live):
    if live["pg"] is not None:
        return live["pg"].rows
    path = Path(live["url"].removeprefix("sqlite:///"))
    return lambda query: sqlite_rows(path, query)


def back_up_while_signing_in(live, smtp_sink) -> Path:
    """Old signs in; Waiting's code is refused for now (4xx) and waits in the outbox; Busy
    signs in over and over while clientgate-backup runs."""
    server = live["server"]
    sign_in(server, smtp_sink, OLD, "203.0.113.5")
    smtp_sink.greylisted.add(WAITING)
    # The password given, the code refused once and queued again: the client waits on the
    # code page.
    client = WebClient(server, "203.0.113.9")
    client.get("/login")
    assert client.post("/login", {"email": WAITING, "password": TEST_PASSWORD})[0] == 302
    rows = rows_of(live)

    def refused_once_and_waiting():
        state = message_state(rows, WAITING)
        return state is not None and state[0] == "queued" and state[1] >= 1

    assert wait_until(refused_once_and_waiting), message_state(rows, WAITING)
    with Busy(server, smtp_sink, BUSY) as busy:
        assert wait_until(lambda: busy.done >= 2 or busy.errors, timeout=30)
        before = busy.done
        result = run_backup(live["base"], live["url"])
        assert wait_until(lambda: busy.done > before + 1 or busy.errors, timeout=30)
    assert not busy.errors, busy.errors
    assert result.returncode == 0, result.stderr
    copy = Path(result.stdout.strip())
    assert copy.exists() and backups_in(live["base"] / "backups") == [copy]
    return copy


def restored_later_sends_no_old_code(live, smtp_sink, url: str) -> None:
    """The restored outbox, its dispatcher running an hour after the backup: Waiting's code
    (its sign-in long over) must not go out; nothing else is sent twice."""
    from app import create_app
    from config import database_url
    from extensions import db
    from services import clock, delivery

    smtp_sink.greylisted.clear()
    app = create_app(make_config(live["base"], smtp_sink, SQLALCHEMY_DATABASE_URI=database_url(url),
                                 **AS_SERVERS_HASH))
    seen = len(smtp_sink.messages)
    clock.advance(timedelta(hours=1))
    try:
        with app.app_context():
            for _ in range(3):
                delivery.run_once()
            db.session.remove()
            db.engine.dispose()
    finally:
        clock.reset()
    time.sleep(0.5)
    sent = [(m.to, m.code) for m in smtp_sink.messages[seen:]]
    assert sent == [], f"sent from a restored outbox after its sign-ins ended: {sent}"
    assert message_state(rows_of(live), WAITING)[0] in ("failed", "cancelled")


def signs_in_and_support_sees_the_history(live, smtp_sink) -> None:
    server = live["server"]
    server.start()
    sign_in(server, smtp_sink, OLD, "203.0.113.5")
    staff = sign_in(server, smtp_sink, SUPPORT, "192.0.2.20")
    status, _, page = staff.get(f"/support/clients/{live['ids'][OLD]}")
    assert status == 200, page[:300]
    assert OLD in page
    # One sign-in from before the backup, one after the restore.
    assert page.count("Signed in") >= 2, page


@on_sqlite
def test_sqlite_backed_up_while_signing_in_restores_as_the_guide_says(live, smtp_sink):
    copy = back_up_while_signing_in(live, smtp_sink)
    assert sqlite_rows(copy, "PRAGMA integrity_check") == [("ok",)]
    assert sqlite_rows(copy, "PRAGMA foreign_key_check") == []
    live["server"].stop()  # systemctl stop clientgate
    lib = Path(live["url"].removeprefix("sqlite:///")).parent
    restored = restore_sqlite_as_the_guide_says(lib, copy)
    assert sorted(p.name for p in (lib / "before-restore").iterdir())[0] == "clientgate.db"
    assert not (lib / "clientgate.db-wal").exists()
    flask_cli("db", "upgrade", database_url=live["url"])  # clientgate db upgrade
    assert restored.exists()
    restored_later_sends_no_old_code(live, smtp_sink, live["url"])
    signs_in_and_support_sees_the_history(live, smtp_sink)


@on_postgresql
def test_postgresql_dumped_while_signing_in_restores_as_the_guide_says(live, smtp_sink):
    copy = back_up_while_signing_in(live, smtp_sink)
    assert copy.suffix == ".dump"
    live["server"].stop()  # systemctl stop clientgate
    pg: AppDatabase = live["pg"]
    pg.dropdb()  # runuser -u postgres -- dropdb clientgate
    pg.createdb()  # runuser -u postgres -- createdb --owner=clientgate clientgate
    pg.pg_restore(copy)  # runuser -u clientgate -- pg_restore --no-owner --dbname=...
    owners = pg.rows("SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = 'public'")
    assert owners == [(pg.role,)]
    flask_cli("db", "upgrade", database_url=live["url"])
    restored_later_sends_no_old_code(live, smtp_sink, live["url"])
    signs_in_and_support_sees_the_history(live, smtp_sink)


@on_postgresql
def test_a_database_url_in_sqlalchemys_form_is_dumped_by_the_real_pg_dump(tmp_path, databases):
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    result = run_backup(tmp_path, url.replace("postgresql://", "postgresql+psycopg://", 1)
                        + "?sslmode=disable")
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(["pg_restore", "--list", result.stdout.strip()],
                             capture_output=True, text=True, check=True).stdout
    assert "TABLE public alembic_version" in listing
