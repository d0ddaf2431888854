"""Running docs/bin/clientgate-backup as the operator's guide installs it (seventh review,
backups): an env file like docs/clientgate.env.example, BACKUP_DIR and RUN_AS, and the guide's
restore steps, in temporary folders only."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Optional

ROOT = Path(__file__).resolve().parents[2]
# REVIEW7BK_SCRIPT=/path/to/an/older/copy runs these tests against that copy instead.
SCRIPT = Path(os.environ.get("REVIEW7BK_SCRIPT") or ROOT / "docs" / "bin" / "clientgate-backup")


def tools_dir(base: Path) -> Path:
    """A folder put first on PATH: a `runuser` that only runs its command when the tests
    are not root (runuser refuses non-root callers); as root the real one is used."""
    folder = base / "bk-tools"
    folder.mkdir(exist_ok=True)
    if os.geteuid() != 0 and not (folder / "runuser").exists():
        stub = folder / "runuser"
        stub.write_text('#!/bin/sh\nwhile [ "$1" != "--" ]; do shift; done\nshift\nexec "$@"\n')
        stub.chmod(0o755)
    return folder


def run_as() -> str:
    """RUN_AS for the script: this process's own user (root when the tests run as root)."""
    import pwd

    return pwd.getpwuid(os.geteuid()).pw_name


def write_env_file(path: Path, database_url: str) -> Path:
    """A settings file as the example writes it: the URL in single quotes."""
    path.write_text("CLIENTGATE_ENV=production\n"
                    "PORTAL_NAME='Smith & Co Client Portal'\n"
                    f"DATABASE_URL='{database_url}'\n")
    return path


def run_backup(base: Path, database_url: str, backup_dir: Optional[Path] = None,
               extra_path: Optional[Path] = None, **env: str) -> subprocess.CompletedProcess:
    """clientgate-backup with ENV_FILE, BACKUP_DIR and RUN_AS set, as root's cron runs it."""
    env_file = write_env_file(base / "clientgate.env", database_url)
    backup_dir = backup_dir or base / "backups"
    backup_dir.mkdir(exist_ok=True)
    path = [str(tools_dir(base))]
    if extra_path is not None:
        path.insert(0, str(extra_path))
    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("PG", "DATABASE_URL", "TEST_DATABASE"))}
    environment.update(ENV_FILE=str(env_file), BACKUP_DIR=str(backup_dir), RUN_AS=run_as(),
                       PATH=":".join(path + [environment.get("PATH", "/usr/bin:/bin")]))
    environment.update(env)
    return subprocess.run(["sh", str(SCRIPT)], env=environment, capture_output=True,
                          text=True, timeout=120, cwd=base)


def backups_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith("clientgate-"))


def restore_sqlite_as_the_guide_says(live_dir: Path, copy: Path) -> Path:
    """Section 9, "Restore SQLite", with the service stopped: move all three files aside,
    put the copy in place (install -m 640). `clientgate db upgrade` is the caller's."""
    subprocess.run(
        ["sh", "-c", 'set -e; mkdir -p before-restore && mv clientgate.db* before-restore/; '
                     'install -m 640 "$1" clientgate.db', "sh", str(copy)],
        cwd=live_dir, check=True, timeout=30)
    return live_dir / "clientgate.db"


def sqlite_rows(path: Path, query: str) -> list[tuple]:
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        return conn.execute(query).fetchall()


def have(command: str) -> bool:
    return shutil.which(command) is not None
