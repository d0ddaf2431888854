"""docs/nginx-clientgate.conf, run by Debian's nginx: what its access log keeps.

Reset, invitation and email-change links carry a one-time token in their address; the
guide's configuration logs those requests without it. Nothing listens behind nginx here
(every answer is a 502): the log line is written all the same. A request naming another host
gets no answer at all.
"""

from __future__ import annotations

import http.client
import re
from types import SimpleNamespace

import pytest

from tests.conftest import free_port
from tests.federation.web_servers import DOCS, Nginx, request

TOKEN = "Zq3x" * 10


@pytest.fixture
def site(tmp_path):
    """The guide's site on 127.0.0.1 over plain HTTP: its TLS port and its port 80."""
    port, plain, nowhere = free_port(), free_port(), free_port()
    text = (DOCS.parent / "nginx-clientgate.conf").read_text()
    text = re.sub(r"\n\s*(ssl_[a-z_]+|listen \[::\]:\d+)[^\n]*", "", text)
    text = text.replace("listen 443 ssl http2 default_server;",
                        f"listen 127.0.0.1:{port} default_server;")
    text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{plain} default_server;")
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    text = text.replace("/var/log/nginx/access.log", str(tmp_path / "site-access.log"))
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{nowhere}")
    nginx = Nginx(tmp_path, text, port).start()
    yield SimpleNamespace(port=port, plain=plain, log=tmp_path / "site-access.log", nginx=nginx)
    nginx.stop()


def test_the_access_log_keeps_no_link_token(site):
    for path in (f"/welcome/{TOKEN}", f"/password/reset/{TOKEN}?from=mail",
                 f"/account/email/confirm/{TOKEN}", "/login?next=/portal",
                 # an app's id_token_hint holds the client's name and address
                 f"/oauth/logout?id_token_hint={TOKEN}", f"/oauth/authorize?id_token_hint={TOKEN}"):
        request(site.port, "GET", path, "portal.example.co.uk")
    # nginx writes a request's line after its answer has gone: stopped, it has written all.
    site.nginx.stop()
    logged = site.log.read_text()
    assert TOKEN not in logged
    assert "GET /welcome/... " in logged and "GET /password/reset/... " in logged
    assert "GET /oauth/logout?... " in logged and "GET /oauth/authorize?... " in logged
    assert "GET /login?next=/portal " in logged  # everything else as it came


def test_a_host_name_not_the_portals_gets_no_answer(site):
    # With Debian's default site switched off (as the guide says), the portal's server would
    # otherwise be nginx's default and pass any Host header on to the app.
    for port in (site.port, site.plain):
        with pytest.raises(http.client.RemoteDisconnected):
            request(port, "GET", "/login", "elsewhere.example")
    status, headers, _ = request(site.plain, "GET", "/login", "portal.example.co.uk")
    assert status == 301 and headers["Location"] == "https://portal.example.co.uk/login"
