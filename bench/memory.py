"""What one process of the app holds once it has used every feature, and its peak with a hash.

bench/run.py's RSS figure is for gunicorn workers that serve sign-ins only. A worker in a
firm's server serves everything sooner or later, and some features load a library the first
time they are used, which then stays for the worker's life: the password rules' lists,
phonenumbers with the first phone number judged, the vonage SDK with the first text message,
py_webauthn with the first passkey, Authlib and the OpenID Connect signing key, segno with the
first QR code, ua-parser with the first browser named. This builds the app in a fresh process
with production's settings (and production's argon2id cost), uses each feature once, and prints
the memory after each step, then the peak while one password is checked on top of all of it.

It is a plain Python process, not a gunicorn worker: a worker holds about 5 MB more (gunicorn
and its arbiter's state). Nothing is sent: the mail and SMS hosts are closed ports.

    .venv/bin/python bench/memory.py                     # SQLite in a temporary folder
    .venv/bin/python bench/memory.py --database URL      # e.g. a PostgreSQL database
    .venv/bin/python bench/memory.py --json              # one line for bench/run.py

bench/run.py runs it after each database's phases and reports its peak against the target
beside the figure for workers that serve sign-ins only.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import tempfile
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Light: servers.py brings nothing the app does not load anyway.
from servers import BENCH_SENDER, in_service_environment  # noqa: E402

MB = 1024 * 1024
TARGET = 150 * MB


def _status(field: str) -> int:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def rss() -> int:
    return _status("VmRSS")


def peak_of(action: Callable[[], object]) -> int:
    """The highest RSS while `action` runs (the kernel's peak, reset first)."""
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")  # resets VmHWM to the present RSS (Linux 4.0 and later)
    action()
    return _status("VmHWM")


def closed_port() -> int:
    """A port nothing listens on. Not mailsink.free_port: that module brings aiosmtpd into the
    process being measured."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_app(database: str, **settings):
    """The app as a production worker builds it, with nothing to send to (unless `settings`
    say otherwise: bench/instructions.py gives it a mail server). Like run.py's bench_app,
    which it does not import: run.py brings the bench's own libraries (aiosmtpd among them)
    into the process whose memory this measures."""
    from app import create_app
    from config import Config, database_url

    port = closed_port()
    config = type("MemoryConfig", (Config,), {
        "SQLALCHEMY_DATABASE_URI": database_url(database), "SECRET_KEY": secrets.token_urlsafe(48),
        "DISPATCHER_AUTOSTART": False, "PORTAL_URL": "http://127.0.0.1",
        "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": port,
        "MAIL_DEFAULT_SENDER": BENCH_SENDER,
        "VONAGE_API_KEY": "key", "VONAGE_API_SECRET": "secret",
        "VONAGE_REST_HOST": f"127.0.0.1:{port}",
        **settings,
    })
    return create_app(config)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database", help="DATABASE_URL (default: SQLite in a temporary folder)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line (steps in bytes, the peak, the backend)")
    args = parser.parse_args(argv)
    folder = tempfile.TemporaryDirectory(prefix="clientgate-memory-")
    database = args.database or f"sqlite:///{Path(folder.name) / 'memory.db'}"

    rows: list[tuple[str, int]] = []

    def step(label: str, action: Callable[[], object] = lambda: None) -> None:
        action()
        rows.append((label, rss()))

    step("Python and nothing else")
    import app as _app  # noqa: F401  (every module a worker imports when it starts)
    step("the app's modules imported")
    app = build_app(database)
    from extensions import db

    with app.app_context():
        db.create_all()
    step("the app built (create_app), tables there")
    client = app.test_client()

    def get(*paths: str) -> None:
        for path in paths:
            answer = client.get(path, base_url="http://127.0.0.1")  # PORTAL_URL's host
            if answer.status_code != 200:
                raise RuntimeError(f"GET {path} answered {answer.status_code}")

    step("the login page served", lambda: get("/login"))

    from services import phones
    from services.accounts import policy
    from services.authenticators import passkeys, totp
    from services.delivery import sms
    from services.delivery.handover import DeliveryError
    from services.signin import passwords
    from services.support import timeline

    def text_message():
        with app.app_context():
            try:
                sms.send_sms("+447700900123", "Your code is 123456", client_ref="memory")
            except DeliveryError:
                pass  # refused by the closed port, after the SDK has loaded

    def passkey_sign_in():
        with app.test_request_context():
            passkeys.authentication_options()

    step("a password checked against the rules",
         lambda: policy.problem("a quiet walk to the harbour"))
    step("a phone number judged (phonenumbers)", lambda: phones.check_uk_mobile("07400 123456"))
    step("a text message (the vonage SDK)", text_message)
    step("a passkey sign-in begun (py_webauthn)", passkey_sign_in)
    step("OpenID Connect discovery and signing key",
         lambda: get("/.well-known/openid-configuration", "/oauth/jwks"))
    step("an authenticator app's QR code", lambda: totp.qr_data_uri(
        "otpauth://totp/ClientGate:client@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ClientGate"))
    step("a browser named (support, trusted devices)", lambda: timeline.device_words(
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"))

    with app.app_context():  # an unknown email: one verification of the dummy hash
        peak = peak_of(lambda: passwords.verify_password(None, "a quiet walk to the harbour"))

    backend = app.config["SQLALCHEMY_DATABASE_URI"].split(":")[0].split("+")[0]
    folder.cleanup()
    if args.json:
        print(json.dumps({"backend": backend, "steps": rows, "peak": peak}))
        return 0
    print(f"Memory of one process of the app ({backend}):")
    before = 0
    for label, value in rows:
        grew = f"(+{(value - before) / MB:.1f})" if before else ""
        print(f"  {label:<42} {value / MB:6.1f} MB {grew}")
        before = value
    verdict = "met" if peak < TARGET else "not met"
    print(f"  {'peak while one password is verified':<42} {peak / MB:6.1f} MB "
          f"(argon2id's 64 MiB on top; target < {TARGET // MB} MB per worker: {verdict})")
    return 0


if __name__ == "__main__":
    in_service_environment()  # glibc's settings for the heap, as the workers have them
    sys.exit(main())
