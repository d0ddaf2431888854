"""A live ClientGate for the backup tests: one gunicorn on a database of this run's kind in
the shape the guide installs (a SQLite file `clientgate.db` in a folder of its own, or a
PostgreSQL database owned by a role that is not a superuser), and clients signing in on it."""

from __future__ import annotations

import secrets
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Optional

from aiosmtpd.controller import Controller

from tests.conftest import TEST_PASSWORD, SMTPServer, _Handler
from tests.production.conftest import DATABASE_KIND, TEST_URL, Gunicorn, WebClient, \
    _admin_connect, wait_until


class _RefusingHandler(_Handler):
    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.server.greylisted:
            return "451 4.7.1 greylisted, try again later"
        return await super().handle_RCPT(server, session, envelope, address, rcpt_options)


class GreylistingSMTP(SMTPServer):
    """The tests' SMTP server, refusing for now (4xx) the addresses in `greylisted`."""

    def __init__(self) -> None:
        super().__init__()
        self.greylisted: set[str] = set()

    def start(self) -> None:
        self._controller = Controller(_RefusingHandler(self), hostname="127.0.0.1",
                                      port=self.port)
        self._controller.start()



def code_for(smtp: SMTPServer, email: str, after: int = 0) -> str:
    def newest():
        return next((m.code for m in reversed(smtp.messages[after:])
                     if email in m.to and m.code), None)

    code = wait_until(newest)
    assert code, f"no code reached {email}"
    return code


def sign_in(server: Gunicorn, smtp: SMTPServer, email: str, ip: str) -> WebClient:
    """Password, then the emailed code, through the front door."""
    client = WebClient(server, ip)
    client.get("/login")
    seen = len(smtp.messages)
    status, headers, _ = client.post("/login", {"email": email, "password": TEST_PASSWORD})
    assert (status, headers["Location"]) == (302, "/login/code"), status
    assert client.get("/login/code")[0] == 200
    status, headers, text = client.post("/login/code", {"code": code_for(smtp, email, seen)})
    assert status == 302, f"{status} {text[:300]}"
    return client


class Busy:
    """Sign-ins one after another in a thread, until stopped."""

    def __init__(self, server: Gunicorn, smtp: SMTPServer, email: str) -> None:
        self.server, self.smtp, self.email = server, smtp, email
        self.done = 0
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                sign_in(self.server, self.smtp, self.email, "198.51.100.7")
                self.done += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                self.errors.append(exc)
                return

    def __enter__(self) -> "Busy":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(60)


# --- PostgreSQL: a role of the app's own, as the guide makes (createuser, createdb --owner) --

class AppDatabase:
    """A PostgreSQL role (LOGIN, not a superuser) and a database it owns, on the throwaway
    server; the guide's restore steps adapted to its superuser and TCP."""

    def __init__(self) -> None:
        token = secrets.token_hex(4)
        self.role, self.name = f"cgbk_role_{token}", f"cgbk_{token}"
        server = urllib.parse.urlsplit(TEST_URL.replace("postgresql+psycopg://",
                                                        "postgresql://"))
        self.host, self.port = server.hostname, server.port
        self.superuser = urllib.parse.unquote(server.username or "postgres")
        with _admin_connect() as conn:
            conn.execute(f'CREATE ROLE "{self.role}" LOGIN')
        self.createdb()
        self.url = f"postgresql://{self.role}@{self.host}:{self.port}/{self.name}"

    def _tool(self, *argv: str) -> None:
        result = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, f"{' '.join(argv)}:\n{result.stdout}{result.stderr}"

    def dropdb(self) -> None:
        self._tool("dropdb", "-h", self.host, "-p", str(self.port), "-U", self.superuser,
                   self.name)

    def createdb(self) -> None:
        self._tool("createdb", "-h", self.host, "-p", str(self.port), "-U", self.superuser,
                   f"--owner={self.role}", self.name)

    def pg_restore(self, dump: Path) -> None:
        """As the app's role, as the guide's `runuser -u clientgate -- pg_restore`."""
        self._tool("pg_restore", "--no-owner", "--exit-on-error",
                   f"--dbname={self.url}", str(dump))

    def rows(self, query: str) -> list[tuple]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            return conn.execute(query).fetchall()

    def remove(self) -> None:
        with _admin_connect() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'DROP ROLE IF EXISTS "{self.role}"')


def message_state(rows, email: str) -> Optional[tuple]:
    """(status, attempts) of the newest message to `email`."""
    found = rows("SELECT status, attempts, destination FROM deliveries ORDER BY id DESC")
    return next(((s, a) for s, a, d in found if d == email), None)


__all__ = ["DATABASE_KIND", "AppDatabase", "Busy", "GreylistingSMTP", "code_for",
           "message_state", "sign_in"]
