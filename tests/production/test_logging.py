"""Log lines: one per event, tracebacks included, and no configured secret in any of them."""

from __future__ import annotations

import logging
import sys

import log_setup

CONFIG = {
    "SECRET_KEY": "the-secret-key-0123456789",
    "MAIL_PASSWORD": "mail-pass-987",
    "VONAGE_API_SECRET": "vonage-secret-555",
    "VONAGE_SIGNATURE_SECRET": None,
    "SQLALCHEMY_DATABASE_URI": "postgresql+psycopg://cg:db-pass-42@127.0.0.1/cg",
}


def record_with_traceback(message: str) -> logging.LogRecord:
    try:
        raise RuntimeError("while talking to smtp.example.com\nwith two lines")
    except RuntimeError:
        exc_info = sys.exc_info()
    return logging.LogRecord("clientgate.delivery", logging.ERROR, __file__, 1, message, (),
                             exc_info)


def test_a_record_with_a_traceback_is_one_line():
    line = log_setup.OneLineFormatter().format(record_with_traceback("delivery 7 failed"))
    assert "\n" not in line
    assert "ERROR clientgate.delivery[" in line and "delivery 7 failed" in line
    assert "Traceback (most recent call last): |" in line and "with two lines" in line


def test_configured_secrets_are_blanked_out_wherever_they_appear():
    formatter = log_setup.OneLineFormatter(log_setup.secrets_of(CONFIG))
    message = ("key the-secret-key-0123456789 mail mail-pass-987 vonage vonage-secret-555 "
               "db postgresql://cg:db-pass-42@127.0.0.1/cg")
    line = formatter.format(record_with_traceback(message))
    for secret in ("the-secret-key-0123456789", "mail-pass-987", "vonage-secret-555",
                   "db-pass-42"):
        assert secret not in line
    assert line.count(log_setup.REDACTED) == 4


def test_configure_adds_one_handler_and_respects_an_existing_setup(monkeypatch):
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    log_setup.configure(CONFIG)
    log_setup.configure(CONFIG)  # a second app in the same process
    assert [h.get_name() for h in root.handlers] == [log_setup.HANDLER_NAME]
    assert root.level == logging.INFO

    other = logging.StreamHandler()
    monkeypatch.setattr(root, "handlers", [other])  # gunicorn --log-config, or pytest
    log_setup.configure(CONFIG)
    assert root.handlers == [other]
