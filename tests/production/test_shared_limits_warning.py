"""Production without Redis says at start that each worker counts request limits alone."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.conftest import make_config, running_app

EXAMPLE = Path(__file__).resolve().parents[2] / "docs" / "clientgate.env.example"
WARNING = "RATELIMIT_STORAGE_URI is not set: each gunicorn worker counts the request limits"


@pytest.mark.parametrize("settings, warned", [
    ({"OUTBOX_WITHOUT_SERVER": False, "RATELIMIT_ENABLED": True}, True),  # production, no Redis
    ({"OUTBOX_WITHOUT_SERVER": False, "RATELIMIT_ENABLED": True,
      "RATELIMIT_STORAGE_URI": "redis://127.0.0.1:1/0"}, False),  # Redis set (not reached here)
    ({"OUTBOX_WITHOUT_SERVER": False, "RATELIMIT_ENABLED": False}, False),  # limits off
    ({"OUTBOX_WITHOUT_SERVER": True, "RATELIMIT_ENABLED": True}, False),  # development
], ids=["production", "redis", "limits-off", "development"])
def test_a_start_without_shared_limits_says_so(tmp_path, smtp, caplog, settings, warned):
    with caplog.at_level(logging.WARNING):
        with running_app(make_config(tmp_path, smtp, **settings)):
            pass
    assert (WARNING in caplog.text) is warned


def test_the_example_settings_share_the_limits_through_the_local_redis():
    """The operator's guide installs redis-server (section 2); the file it copies uses it."""
    found = re.search(r"^RATELIMIT_STORAGE_URI=(\S+)$", EXAMPLE.read_text(), re.MULTILINE)
    assert found and found.group(1) == "redis://127.0.0.1:6379/0"
    guide = (EXAMPLE.parent / "operators-guide.md").read_text()
    assert "nginx certbot python3-certbot-nginx redis-server" in guide
