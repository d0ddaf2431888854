"""Ctrl-C in the middle of db-copy: the operator is told nothing landed in the target and to
run it again, and indeed nothing did."""

from __future__ import annotations

import services.data_copy as data_copy
from app import create_app
from tests.conftest import make_config
from tests.production.test_data_copy import (  # noqa: F401 (fixtures)
    close, copy, migrated_sqlite, migrated_target, rows_of, source,
)


def test_ctrl_c_mid_copy_says_nothing_was_written(source, migrated_target, tmp_path,
                                                  monkeypatch):
    real = data_copy._copy_table

    def interrupted(src, target, table):
        count = real(src, target, table)
        if table.name == "users":  # some rows are in the target's open transaction
            raise KeyboardInterrupt
        return count

    monkeypatch.setattr(data_copy, "_copy_table", interrupted)
    app = create_app(make_config(tmp_path, SQLALCHEMY_DATABASE_URI=migrated_target))
    result = copy(app, "--from", source)
    close(app)
    assert result.exit_code == 1, result.output
    assert "nothing was written to the target" in result.output, result.output
    assert "run the copy again" in result.output.lower()
    assert all(not rows for rows in rows_of(migrated_target).values())
