"""Copy every row from one database to another, e.g. from SQLite to PostgreSQL.

The target must have the same schema revision (`flask db upgrade` on both) and no rows. Tables
are copied parent first, ids kept, in one transaction on the target: either all of it lands or
nothing does. PostgreSQL's id sequences are then moved past the copied ids, so new rows do not
collide with old ones. The source is read in one snapshot and never written.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Callable, Optional

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import (
    Connection, Engine, Table, bindparam, create_engine, func, inspect, select, text,
)
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from cli import AdminCommand
from config import database_url
from db_setup import configure_engine
from extensions import db
from models import DispatcherBeat
from services import clock, delivery

BATCH = 500
# A dispatcher that beat this recently means the app still runs on the source.
RUNNING_IF_BEAT_WITHIN = delivery.HEARTBEAT_EVERY * 3


class CopyRefused(Exception):
    """The copy cannot start; the message says what to do."""


@dataclass
class CopyReport:
    """What was copied: rows per table, in the order they were copied."""

    rows: dict[str, int] = field(default_factory=dict)
    sequences_reset: list[str] = field(default_factory=list)
    committed: bool = False


def _revision(conn: Connection) -> Optional[str]:
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def _check_schemas(source: Connection, target: Connection) -> None:
    """Both databases must be at the same migration, so the tables and columns match."""
    source_rev, target_rev = _revision(source), _revision(target)
    if source_rev is None:
        raise CopyRefused("The source database has no schema revision: is it a ClientGate "
                          "database? Run `flask --app app db upgrade` against it first.")
    if target_rev is None:
        raise CopyRefused("The target database has no tables yet. Create them first with "
                          "`DATABASE_URL=<target> flask --app app db upgrade`.")
    if source_rev != target_rev:
        raise CopyRefused(f"The source database is at schema revision {source_rev} and the "
                          f"target at {target_rev}. Run `flask --app app db upgrade` against "
                          "both (with DATABASE_URL set to each), then copy again.")


def _check_target_empty(target: Connection, tables: list[Table]) -> None:
    filled = [t.name for t in tables
              if target.execute(select(func.count()).select_from(t)).scalar()]
    if filled:
        raise CopyRefused("The target database already has rows in: " + ", ".join(filled) +
                          ". Copy only into a new, empty database (created with "
                          "`flask --app app db upgrade`), so nothing is mixed or overwritten.")


def _check_source_idle(source: Connection) -> None:
    """Rows written after the snapshot would be left behind: the app must be stopped."""
    last = source.execute(select(func.max(DispatcherBeat.beat_at))).scalar()
    if last is not None and clock.now() - last < RUNNING_IF_BEAT_WITHIN:
        raise CopyRefused("ClientGate still seems to be running on the source database (its "
                          "dispatcher was alive seconds ago). Stop it first "
                          "(`systemctl stop clientgate`), wait 30 seconds, then copy.")


def _begin_snapshot(source: Connection) -> None:
    """Read every table as of one moment, while nothing is written to the source."""
    if source.dialect.name == "sqlite":
        source.exec_driver_sql("BEGIN")  # deferred: a read snapshot, no write lock
    elif source.dialect.name == "postgresql":
        source.exec_driver_sql("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")


def _copy_table(source: Connection, target: Connection, table: Table) -> int:
    """Copy one table's rows, ids kept. Returns the number of rows."""
    # A column that points into its own table (sign_ins.superseded_by_id) may point at a
    # later row, so it is filled in after every row of the table is there.
    self_refs = [fk.parent.name for fk in table.foreign_keys if fk.column.table is table]
    keys = list(table.primary_key.columns)
    later: list[dict] = []
    count = 0
    result = source.execution_options(stream_results=True).execute(
        select(table).order_by(*keys))
    for chunk in result.mappings().partitions(BATCH):
        rows = [dict(row) for row in chunk]
        for row in rows:
            if any(row[name] is not None for name in self_refs):
                later.append({**{f"_{k.name}": row[k.name] for k in keys},
                              **{name: row[name] for name in self_refs}})
                row.update({name: None for name in self_refs})
        target.execute(table.insert(), rows)
        count += len(rows)
    if later:
        target.execute(
            table.update()
            .where(*(k == bindparam(f"_{k.name}") for k in keys))
            .values({name: bindparam(name) for name in self_refs}),
            later,
        )
    return count


def _reset_sequences(target: Connection, tables: list[Table]) -> list[str]:
    """Move each PostgreSQL id sequence past the largest copied id."""
    done = []
    for table in tables:
        for column in table.primary_key.columns:
            sequence = target.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": table.name, "column": column.name},
            ).scalar()
            if sequence is None:
                continue
            target.execute(
                text(f'SELECT setval(:sequence, COALESCE(MAX("{column.name}"), 1), '
                     f'MAX("{column.name}") IS NOT NULL) FROM "{table.name}"'),
                {"sequence": sequence},
            )
            done.append(sequence)
    return done


def _check_source_exists(source_url: str) -> None:
    """A SQLite source that is not there would be created empty, and then be refused as "not a
    ClientGate database": a mistyped path (three slashes for four) is named as what it is."""
    url = make_url(database_url(source_url))
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") \
            or url.database.startswith("file:"):
        return
    path = os.path.abspath(url.database)
    if not os.path.isfile(path):
        raise CopyRefused(f"There is no SQLite database file at {path}. Check --from: an "
                          "absolute path is written with four slashes, as in "
                          "sqlite:////var/lib/clientgate/clientgate.db.")


def make_engine(url: str) -> Engine:
    """An engine for a database URL, with the same SQLite settings as the app."""
    engine = create_engine(database_url(url), hide_parameters=True)
    configure_engine(engine)
    return engine


def copy_database(source_url: str, target_url: str, *, check_idle: bool = True,
                  progress: Callable[[str, int], None] = lambda name, rows: None) -> CopyReport:
    """Copy every table from source to target (same schema revision, empty target)."""
    if database_url(source_url) == database_url(target_url):
        raise CopyRefused("The source and the target are the same database.")
    _check_source_exists(source_url)
    tables = list(db.metadata.sorted_tables)
    report = CopyReport()
    source_engine, target_engine = make_engine(source_url), make_engine(target_url)
    try:
        with source_engine.connect() as source, target_engine.connect() as target:
            _begin_snapshot(source)
            _check_schemas(source, target)
            if check_idle:
                _check_source_idle(source)
            _check_target_empty(target, tables)
            target.rollback()  # the checks end here; the copy is one transaction of its own
            with target.begin():
                for table in tables:
                    report.rows[table.name] = _copy_table(source, target, table)
                    progress(table.name, report.rows[table.name])
                if target.dialect.name == "postgresql":
                    report.sequences_reset = _reset_sequences(target, tables)
                for table in tables:
                    copied = target.execute(select(func.count()).select_from(table)).scalar()
                    if copied != report.rows[table.name]:
                        raise CopyRefused(f"{table.name}: {report.rows[table.name]} rows read "
                                          f"but {copied} in the target; nothing was copied.")
            report.committed = True
            source.rollback()
    except KeyboardInterrupt:
        # Ctrl-C: before the commit the target's transaction is rolled back and nothing was
        # written (the caller says so); after it, the copy is whole and is reported as done.
        if not report.committed:
            raise
    finally:
        source_engine.dispose()
        target_engine.dispose()
    return report


def _parsed(option: str, url: str) -> URL:
    """The database URL given to `option`, or a ClickException saying how one is written."""
    try:
        return make_url(database_url(url))
    except (ArgumentError, ValueError):  # ValueError: a port that is not a number
        shown = re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)  # never echo a password
        raise click.ClickException(
            f"{option} {shown!r} is not a database URL. Write it like "
            "sqlite:////var/lib/clientgate/clientgate.db or "
            "postgresql://clientgate:PASSWORD@localhost/clientgate.") from None


@click.command("db-copy", cls=AdminCommand)
@click.option("--from", "source", required=True, metavar="URL",
              help="Database to copy from, e.g. sqlite:////var/lib/clientgate/clientgate.db")
@click.option("--to", "target", metavar="URL",
              help="Database to copy into (default: DATABASE_URL). It must be empty and "
                   "created with `flask db upgrade`.")
@click.option("--even-if-running", is_flag=True,
              help="Copy although the app seems to run on the source (rows written during "
                   "the copy are left behind).")
@with_appcontext
def db_copy(source: str, target: Optional[str], even_if_running: bool):
    """Copy every row from another database into an empty one, e.g. SQLite to PostgreSQL."""
    target = target or current_app.config["SQLALCHEMY_DATABASE_URI"]
    shown = [_parsed(option, url).render_as_string(hide_password=True)
             for option, url in (("--from", source), ("--to", target))]
    click.echo(f"Copying {shown[0]} -> {shown[1]}")
    try:
        report = copy_database(
            source, target, check_idle=not even_if_running,
            progress=lambda name, rows: click.echo(f"  {name:<18} {rows:>8} rows"),
        )
    except CopyRefused as exc:
        raise click.ClickException(str(exc)) from None
    except KeyboardInterrupt:  # Ctrl-C: the target's transaction was rolled back
        click.echo()
        raise click.ClickException("Stopped: nothing was written to the target. Run the copy "
                                   "again when you are ready.") from None
    except SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(
            f"The copy failed and nothing was written to the target: {reason}") from None
    total = sum(report.rows.values())
    click.echo(f"Done: {total} rows in {len(report.rows)} tables"
               + (f"; {len(report.sequences_reset)} id sequences moved on."
                  if report.sequences_reset else "."))
