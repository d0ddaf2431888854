"""A throwaway PostgreSQL this module may stop, restart and starve of connections, for the
seventh review's database-trouble tests (scripts/pgtemp.py starts it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import pgtemp  # noqa: E402


class RestartablePostgres(pgtemp.TempPostgres):
    """pgtemp's server, with `down()` (a fast shutdown, as `pg_ctl restart -m fast` begins)
    and `up()` on the same port, and `terminate_all()` (every client's backend ended)."""

    def _pg_ctl(self, *args: str) -> None:
        self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), *args)

    def down(self) -> None:
        self._pg_ctl("-m", "fast", "-w", "-t", "30", "stop")

    def up(self) -> None:
        options = " ".join(f"-c {name}={value}" for name, value in pgtemp.SETTINGS.items())
        options += f" -c unix_socket_directories={self.base} -p {self.port}"
        self._pg_ctl("-l", str(self.log), "-w", "-t", "60", "-o", options, "start")

    def terminate_all(self) -> int:
        """pg_terminate_backend of every other client connection; how many were ended."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(
                "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchone()[0]


def url_for_sqlalchemy(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg://", 1)


class SilentServer:
    """A database address that takes connections and never answers: a hung server, or a
    failover's address whose packets go nowhere, as a client's driver sees it."""

    def __init__(self) -> None:
        import socket
        import threading

        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.taken: list = []
        threading.Thread(target=self._take, daemon=True).start()

    def _take(self) -> None:
        try:
            while True:
                self.taken.append(self.listener.accept()[0])
        except OSError:
            return  # closed

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://clientgate@127.0.0.1:{self.port}/clientgate"

    def close(self) -> None:
        self.listener.close()
        for connection in self.taken:
            connection.close()
