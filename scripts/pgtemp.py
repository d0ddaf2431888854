#!/usr/bin/env python3
"""A throwaway PostgreSQL server on 127.0.0.1 for tests and benchmarks.

Uses Debian's `postgresql` package (binaries under /usr/lib/postgresql/<version>/bin) and
the standard library only. As root it runs the server as the `postgres` user, because
initdb and postgres refuse to run as root.

From Python:

    from pgtemp import temporary_postgres
    with temporary_postgres() as url:      # postgresql://clientgate@127.0.0.1:PORT/clientgate
        ...

From the shell (the server is stopped when the command ends, even when it fails):

    python scripts/pgtemp.py run -- env | grep TEST_DATABASE_URL
    python scripts/pgtemp.py start --dir /tmp/pg   # prints the URL, keeps running
    python scripts/pgtemp.py stop --dir /tmp/pg
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Iterator, Optional

SUPERUSER = "clientgate"
DATABASE = "clientgate"
# Speed over durability: this server's data is thrown away.
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "64MB",
}


def find_bin_dir() -> Path:
    """The directory with initdb and pg_ctl: $PG_BIN, Debian's newest version, or the PATH."""
    candidates = []
    if os.environ.get("PG_BIN"):
        candidates.append(Path(os.environ["PG_BIN"]))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    candidates += sorted((Path(p) for p in versions),
                         key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
                         reverse=True)
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    for directory in candidates:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    raise RuntimeError(
        "PostgreSQL is not installed (no initdb found). On Debian or Ubuntu: "
        "apt-get install -y postgresql"
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def as_server_user(argv: list[str]) -> list[str]:
    """As root, run a server command as the postgres user (initdb refuses root)."""
    if os.geteuid() != 0:
        return argv
    runuser = shutil.which("runuser")
    if runuser is None:
        raise RuntimeError("running as root needs `runuser` (util-linux) to become postgres")
    return [runuser, "-u", "postgres", "--", *argv]


class TempPostgres:
    """One throwaway cluster: `start()` returns its URL, `stop()` removes everything."""

    def __init__(self, base_dir: Optional[str] = None) -> None:
        self.bin_dir = find_bin_dir()
        # As root the postgres user must reach the cluster, so it lives under /tmp, not $TMPDIR.
        self.base = Path(base_dir) if base_dir else Path(
            tempfile.mkdtemp(prefix="pgtemp-", dir="/tmp" if os.geteuid() == 0 else None))
        self.data = self.base / "data"
        self.log = self.base / "server.log"
        self.port: Optional[int] = None
        self.url: Optional[str] = None

    def _run(self, *argv: str, timeout: float = 120) -> None:
        result = subprocess.run(as_server_user(list(argv)), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=timeout)
        if result.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{result.stdout}{self._log_tail()}")

    def _log_tail(self) -> str:
        try:
            return "\n--- server log ---\n" + self.log.read_text()[-3000:]
        except OSError:
            return ""

    def start(self) -> str:
        """initdb, start the server on a free port, create the database; returns its URL."""
        self.base.mkdir(parents=True, exist_ok=True)
        if os.geteuid() == 0:
            # The postgres user must own the cluster and reach it through the temp dir.
            shutil.chown(self.base, "postgres", "postgres")
            os.chmod(self.base, 0o700)
        self._run(str(self.bin_dir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                  "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync")
        options = " ".join(f"-c {name}={value}" for name, value in SETTINGS.items())
        # The socket goes into our own directory: /var/run/postgresql may not exist.
        options += f" -c unix_socket_directories={self.base}"
        for attempt in range(5):
            self.port = free_port()
            try:
                self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                          "-w", "-t", "60", "-o", f"{options} -p {self.port}", "start")
                break
            except RuntimeError:
                # Another process may have taken the port between our check and the start.
                if attempt == 4:
                    raise
        self._run(str(self.bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port),
                  "-U", SUPERUSER, DATABASE)
        self.url = f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{DATABASE}"
        (self.base / "url").write_text(self.url + "\n")
        return self.url

    def stop(self) -> None:
        """Stop the server (fast shutdown, then immediate) and delete its files."""
        stop_cluster(self.base)


def stop_cluster(base: Path) -> None:
    """Stop the cluster kept under `base`, if it runs, and remove the directory."""
    data = Path(base) / "data"
    if (data / "postmaster.pid").exists():
        pg_ctl = str(find_bin_dir() / "pg_ctl")
        for mode in ("fast", "immediate"):
            result = subprocess.run(
                as_server_user([pg_ctl, "-D", str(data), "-m", mode, "-w", "-t", "30", "stop"]),
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            if result.returncode == 0:
                break
    shutil.rmtree(base, ignore_errors=True)


@contextlib.contextmanager
def temporary_postgres(base_dir: Optional[str] = None) -> Iterator[str]:
    """A running throwaway server for the `with` block; yields its postgresql:// URL."""
    server = TempPostgres(base_dir)
    try:
        yield server.start()
    finally:
        server.stop()


def _run_command(argv: list[str], env_name: str) -> int:
    """Run `argv` with the server's URL in `env_name`; stop the server however it ends."""
    # SIGTERM (CI cancelling the job) must still reach the `finally` that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with temporary_postgres() as url:
        env = dict(os.environ, **{env_name: url})
        print(f"pgtemp: PostgreSQL at {url}", file=sys.stderr, flush=True)
        try:
            return subprocess.call(argv, env=env)
        except KeyboardInterrupt:
            return 130


def main(args: Optional[list[str]] = None) -> int:
    """Command line: run, start or stop a throwaway server."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="action", required=True)
    run = sub.add_parser("run", help="start a server, run a command with its URL, stop it")
    run.add_argument("--env", default="TEST_DATABASE_URL",
                     help="variable the URL is passed in (default TEST_DATABASE_URL)")
    run.add_argument("command", nargs=argparse.REMAINDER, help="-- command and its arguments")
    start = sub.add_parser("start", help="start a server and print its URL")
    start.add_argument("--dir", required=True, help="directory for the cluster (made if missing)")
    stop = sub.add_parser("stop", help="stop the server started with --dir and delete it")
    stop.add_argument("--dir", required=True)
    options = parser.parse_args(args)

    if options.action == "run":
        command = options.command[1:] if options.command[:1] == ["--"] else options.command
        if not command:
            parser.error("run needs a command after --")
        return _run_command(command, options.env)
    if options.action == "start":
        server = TempPostgres(options.dir)
        try:
            print(server.start())
        except BaseException:
            server.stop()
            raise
        return 0
    stop_cluster(Path(options.dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
