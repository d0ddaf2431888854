"""Fixtures for issue 11's tests: a production-configured app and the Vonage stub."""

from __future__ import annotations

import pytest

from config import Config
from tests.conftest import PRODUCTION_SENDER, running_app
from tests.vonage_stub import VonageStub


def production_config(tmp_path, smtp, **overrides):
    """The production Config (no console outbox), with the settings it insists on."""
    values = {
        "SECRET_KEY": "p" * 48, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/prod.db",
        "PORTAL_URL": "http://localhost", "MAIL_SERVER": "127.0.0.1", "MAIL_PORT": smtp.port,
        "MAIL_DEFAULT_SENDER": PRODUCTION_SENDER,
        "MAIL_TIMEOUT": 5, "VONAGE_API_KEY": None, "VONAGE_API_SECRET": None,
        "VONAGE_SIGNATURE_SECRET": None, "SESSION_COOKIE_SECURE": False,
        "RATELIMIT_ENABLED": False, "DISPATCHER_AUTOSTART": False, "HEALTHZ_TOKEN": None,
        "TRUSTED_HOSTS": None,
    }
    values.update(overrides)
    return type("ProductionForTest", (Config,), values)


@pytest.fixture
def production_app(tmp_path, smtp):
    with running_app(production_config(tmp_path, smtp)) as application:
        yield application


@pytest.fixture
def vonage(tmp_path):
    """Vonage's SMS API on 127.0.0.1, over HTTPS with its own certificate."""
    stub = VonageStub(tmp_path)
    stub.start()
    yield stub
    stub.stop()
