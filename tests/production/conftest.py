"""Fixtures for production-shaped tests: fresh databases, the `flask` command, gunicorn.

Each test runs on the database kind of this run: PostgreSQL when TEST_DATABASE_URL points at
one (scripts/test.sh starts a throwaway server), SQLite otherwise. A fresh database is a new
file, or a new database on that PostgreSQL server, dropped afterwards.
"""

from __future__ import annotations

import http.client
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.parse
from http.cookies import SimpleCookie
from pathlib import Path
from typing import Optional

import pytest

from bench.servers import service_environment
from tests.conftest import CSRF_IN_PAGE, PRODUCTION_SENDER, SMTPServer, free_port

ROOT = Path(__file__).resolve().parents[2]
TEST_URL = os.environ.get("TEST_DATABASE_URL") or ""
DATABASE_KIND = "postgresql" if TEST_URL.startswith(("postgres://", "postgresql")) else "sqlite"


# --- fresh databases ---------------------------------------------------------------------

def _admin_connect():
    import psycopg

    # The server's URL without SQLAlchemy's "+psycopg", which libpq does not know.
    return psycopg.connect(TEST_URL.replace("postgresql+psycopg://", "postgresql://"),
                           autocommit=True)


class Databases:
    """Makes empty databases of one kind and removes them at the end."""

    def __init__(self, directory: Path, kind: str = DATABASE_KIND) -> None:
        self.directory = directory
        self.kind = kind
        self.made: list[str] = []

    def new(self) -> str:
        """The URL of a new, empty database."""
        name = f"cg_{secrets.token_hex(6)}"
        if self.kind == "sqlite":
            return f"sqlite:///{self.directory / (name + '.db')}"
        with _admin_connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        self.made.append(name)
        parts = urllib.parse.urlsplit(TEST_URL)
        return urllib.parse.urlunsplit(parts._replace(path="/" + name))

    def drop_all(self) -> None:
        if not self.made:
            return
        with _admin_connect() as conn:
            for name in self.made:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.made.clear()


@pytest.fixture
def databases(tmp_path):
    """Empty databases of this run's kind, for this test."""
    made = Databases(tmp_path)
    yield made
    made.drop_all()


# --- the operator's commands -------------------------------------------------------------

SECRET_KEY = "production-test-secret-key-" + "x" * 24
MAIL_PASSWORD = "mail-password-never-logged-0123"


def production_env(database_url: str, **extra: str) -> dict[str, str]:
    """The environment of a production start: what an operator's env file would set."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("FLASK_", "TEST_DATABASE", "CLIENTGATE_", "MAIL_", "VONAGE_"))}
    env.update(CLIENTGATE_ENV="production", SECRET_KEY=SECRET_KEY, DATABASE_URL=database_url,
               SESSION_COOKIE_SECURE="0", PYTHONUNBUFFERED="1",
               # Production refuses to start without these (issue 11; a sender at a domain).
               PORTAL_URL="http://127.0.0.1", MAIL_SERVER="127.0.0.1",
               MAIL_DEFAULT_SENDER=PRODUCTION_SENDER)
    env.update(extra)
    return env


def flask_cli(*args: str, database_url: str, check: bool = True, **extra: str):
    """Run `flask --app app ARGS` as an operator would, in its own process."""
    result = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", *args], cwd=ROOT,
        env=production_env(database_url, **extra), capture_output=True, text=True, timeout=180,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"flask {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


# --- gunicorn ----------------------------------------------------------------------------

def wait_until(condition, timeout: float = 60, every: float = 0.1):
    """Poll `condition` until it is true or `timeout` seconds pass; returns what it last
    returned, for the assertion's message."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)


class Gunicorn:
    """`gunicorn 'app:create_app()'` with several workers, as the operator's guide and its
    systemd unit start it."""

    def __init__(self, database_url: str, smtp: SMTPServer, log_dir: Path, workers: int = 3,
                 own_group: bool = False, **extra: str) -> None:
        self.database_url = database_url
        self.port = free_port()
        self.workers = workers
        self.log_path = log_dir / "gunicorn.log"
        # In a process group of its own, the whole server (master and workers) can be
        # killed at once, as when a machine is lost (kill_group).
        self.own_group = own_group
        settings = dict(
            MAIL_SERVER="127.0.0.1", MAIL_PORT=str(smtp.port),
            PORTAL_URL=f"http://127.0.0.1:{self.port}",
            MAIL_PASSWORD=MAIL_PASSWORD, MAIL_DEFAULT_SENDER="Portal <portal@example.com>",
            # Behind a proxy, as in the guide: each test client has an address of its own.
            PROXY_FIX_X_FOR="1", RATELIMIT_ENABLED="0", CODES_PER_ACCOUNT_PER_HOUR="1000",
            # Two messages in hand at a time per worker: the workers claim in small bites,
            # over and over, so their claims really do race for the same rows.
            DISPATCHER_SENDERS="2",
        )
        settings.update(extra)
        # With the systemd unit's own settings too (glibc's huge pages for the hash).
        self.env = {**production_env(database_url, **settings), **service_environment()}
        self.process: Optional[subprocess.Popen] = None

    def start(self, timeout: float = 90) -> None:
        log = open(self.log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "--workers", str(self.workers),
             "--bind", f"127.0.0.1:{self.port}", "--graceful-timeout", "5",
             "--timeout", "120", "--no-control-socket", "app:create_app()"],
            cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=self.own_group,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"gunicorn exited at start:\n{self.log()}")
            try:
                if self.request("GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"gunicorn did not answer in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.own_group:
            os.killpg(self.process.pid, signal.SIGTERM)
        else:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)

    def kill_group(self) -> None:
        """SIGKILL the master and every worker at once: no clean shutdown of anything."""
        assert self.own_group and self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def request(self, method: str, path: str, body: Optional[dict] = None,
                headers: Optional[dict] = None):
        """One HTTP request on a new connection: (status, headers, text)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        try:
            data = urllib.parse.urlencode(body) if body is not None else None
            all_headers = dict(headers or {})
            if data is not None:
                all_headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request(method, path, body=data, headers=all_headers)
            response = conn.getresponse()
            return response.status, response.msg, response.read().decode(errors="replace")
        finally:
            conn.close()


class WebClient:
    """One browser against the gunicorn server: keeps its cookie, posts CSRF tokens back."""

    def __init__(self, server: Gunicorn, ip: str = "127.0.0.1") -> None:
        self.server = server
        self.ip = ip  # as nginx would report it (the header only: all traffic is local)
        self.cookies: dict[str, str] = {}
        self.csrf: Optional[str] = None

    def _send(self, method: str, path: str, body: Optional[dict] = None):
        headers = {"User-Agent": "production-test", "X-Forwarded-For": self.ip}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, response_headers, text = self.server.request(method, path, body, headers)
        for header in response_headers.get_all("Set-Cookie") or ():
            jar = SimpleCookie()
            jar.load(header)
            self.cookies.update({name: morsel.value for name, morsel in jar.items()})
        match = CSRF_IN_PAGE.search(text)
        if match:
            self.csrf = match.group(1) or match.group(2)
        return status, response_headers, text

    def get(self, path: str):
        return self._send("GET", path)

    def post(self, path: str, data: dict):
        return self._send("POST", path, {**data, "csrf_token": self.csrf or ""})


@pytest.fixture(scope="module")
def module_smtp():
    """A real SMTP server for a whole module (the gunicorn server outlives one test)."""
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_smtp):
    """gunicorn with three workers on a migrated database of this run's kind."""
    databases = Databases(tmp_path_factory.mktemp("db"))
    url = databases.new()
    flask_cli("db", "upgrade", database_url=url)
    gunicorn = Gunicorn(url, module_smtp, tmp_path_factory.mktemp("gunicorn"))
    try:
        gunicorn.start()
        yield gunicorn
    finally:
        gunicorn.stop()
        databases.drop_all()
