"""Logging for operators: one line per event on standard error, with no secret in any line.

systemd's journal (or whatever reads standard error) keeps the lines. A traceback stays on
the line of the event it belongs to, so `journalctl -u clientgate | grep ERROR` shows it
whole. The configured secrets (SECRET_KEY, mail and Vonage passwords, the database password)
are blanked out of every line, whatever printed them. Codes never reach a log at all: the
audit trail logs outcomes, not digits (services/audit.py).
"""

from __future__ import annotations

import logging
import sys
from typing import Iterable
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

FORMAT = "%(asctime)s %(levelname)s %(name)s[%(process)d] %(message)s"
REDACTED = "[redacted]"
SECRET_SETTINGS = ("SECRET_KEY", "MAIL_PASSWORD", "VONAGE_API_SECRET", "VONAGE_SIGNATURE_SECRET")
HANDLER_NAME = "clientgate"


class OneLineFormatter(logging.Formatter):
    """Writes each record, traceback included, as one line, with known secrets blanked out."""

    def __init__(self, secrets: Iterable[str] = (), fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        # Longest first, so a secret that contains another is blanked whole.
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        for secret in self.secrets:
            line = line.replace(secret, REDACTED)
        return " | ".join(part for part in line.replace("\r", "").split("\n") if part.strip())


def secrets_of(config) -> list[str]:
    """The values in this configuration that must never be written to a log."""
    values = [config.get(name) for name in SECRET_SETTINGS]
    try:
        values.append(make_url(config.get("SQLALCHEMY_DATABASE_URI") or "").password)
    except Exception:  # a URL SQLAlchemy cannot parse has no password to hide
        pass
    try:  # redis://:PASSWORD@host:6379/0, shared by several servers' request limits
        values.append(urlsplit(config.get("RATELIMIT_STORAGE_URI") or "").password)
    except ValueError:
        pass
    return [str(v) for v in values if v]


def configure(config) -> None:
    """Send log lines to standard error, unless something else configured logging first.

    Something else is gunicorn's --log-config, an operator's own setup, or pytest. Ours is
    added once per process, even when several apps are created in it.
    """
    # Alembic (loaded by every `flask` command) announces each of its plugins at INFO: seven
    # lines before `flask db upgrade` says what it did, and before `flask run` is up.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    root = logging.getLogger()
    ours = [h for h in root.handlers if h.get_name() == HANDLER_NAME]
    if ours:
        ours[0].setFormatter(OneLineFormatter(secrets_of(config)))
        return
    if root.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(OneLineFormatter(secrets_of(config)))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
