"""docs/nginx-clientgate.conf, run by Debian's nginx: what its access log keeps.

Reset, invitation and email-change links carry a one-time token in their address; the
guide's configuration logs those requests without it. Nothing listens behind nginx here
(every answer is a 502): the log line is written all the same.
"""

from __future__ import annotations

import re

from tests.conftest import free_port
from tests.federation.web_servers import DOCS, Nginx, request

TOKEN = "Zq3x" * 10


def test_the_access_log_keeps_no_link_token(tmp_path):
    port, nowhere = free_port(), free_port()
    site = (DOCS.parent / "nginx-clientgate.conf").read_text()
    site = re.sub(r"\n\s*(ssl_[a-z_]+|listen \[::\]:\d+)[^\n]*", "", site)
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    site = site.replace("listen 80;", f"listen 127.0.0.1:{free_port()};")
    site = site.replace("/var/log/nginx/access.log", str(tmp_path / "site-access.log"))
    site = site.replace("127.0.0.1:8000", f"127.0.0.1:{nowhere}")
    nginx = Nginx(tmp_path, site, port).start()
    try:
        for path in (f"/welcome/{TOKEN}", f"/password/reset/{TOKEN}?from=mail",
                     f"/account/email/confirm/{TOKEN}", "/login?next=/portal"):
            request(port, "GET", path, "portal.example.co.uk")
    finally:
        nginx.stop()
    logged = (tmp_path / "site-access.log").read_text()
    assert TOKEN not in logged
    assert "GET /welcome/... " in logged and "GET /password/reset/... " in logged
    assert "GET /login?next=/portal " in logged  # everything else as it came
