"""Mail settings: half a login toward a relay on this machine is not used, and the log says so.

(Settings with which no message could go stop production's start: tests/production/test_config.py.)
"""

from __future__ import annotations

import logging

from services import delivery
from tests.conftest import make_config, running_app
from tests.delivery.test_transport_security import only_delivery, sign_in_and_deliver


def test_half_a_login_toward_a_local_relay_is_said_in_the_log_not_silently_dropped(
        tmp_path, smtp, caplog):
    delivery._half_login_unused.cache_clear()  # said once a process
    with running_app(make_config(tmp_path, smtp, MAIL_PASSWORD="mail-password")) as app:
        with caplog.at_level(logging.WARNING, logger="clientgate.delivery"):
            sign_in_and_deliver(app)
        assert smtp.wait_for(1)[0].code  # the relay takes it without a login
        assert only_delivery(app).status == "sent"
    assert "Only one of MAIL_USERNAME and MAIL_PASSWORD is set: mail goes to 127.0.0.1 " \
           "without a login" in caplog.text
    assert "mail-password" not in caplog.text
