"""Review of the development outbox's edges: never in production, this machine only, and
no place for a message's HTML to run."""

from __future__ import annotations

from collections import deque

import pytest

from services import clock
from tests.conftest import make_config, running_app


@pytest.fixture
def dev(tmp_path, smtp):
    with running_app(make_config(tmp_path, smtp, DISPATCHER_AUTOSTART=False,
                                 DEV_OUTBOX=True)) as application:
        yield application


@pytest.mark.parametrize("relayed", [
    {"X-Forwarded-For": "203.0.113.9"},
    {"Forwarded": "for=203.0.113.9;proto=https"},
    {"X-Real-IP": "203.0.113.9"},
])
def test_the_outbox_is_not_shown_through_a_tunnel_or_proxy_on_this_machine(dev, relayed):
    """A tunnel (ngrok, cloudflared) or a proxy on the developer's machine, as is started to
    let Vonage's receipts reach a development server, connects from 127.0.0.1 on behalf of
    whoever is at its other end: the codes were shown to them."""
    client = dev.test_client()
    assert client.get("/dev/outbox").status_code == 200  # this machine, directly
    assert client.get("/dev/outbox", headers=relayed).status_code == 404


def test_a_message_with_html_is_shown_as_text(dev):
    dev.extensions.setdefault("dev_outbox", deque(maxlen=100)).appendleft({
        "at": clock.now(), "channel": "email", "to": '<img src=x onerror="alert(1)">',
        "subject": "<script>alert(2)</script>", "text": "</pre><script>alert(3)</script>"})
    page = dev.test_client().get("/dev/outbox").get_data(as_text=True)
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    assert "&lt;/pre&gt;&lt;script&gt;alert(3)" in page
