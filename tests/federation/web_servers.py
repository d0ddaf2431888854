"""Real web servers for the forward-auth tests: Debian's nginx and caddy, and a small app.

Each runs on 127.0.0.1 on a free port, with its configuration, logs, pid and temporary files
in a folder of its own, and stops afterwards. Their configuration is the guide's own
(docs/forward-auth/), with only names, ports and certificates swapped for the test's.
"""

from __future__ import annotations

import html
import http.client
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Optional

from werkzeug.serving import make_server

from tests.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "forward-auth"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CADDY = shutil.which("caddy") or "/usr/bin/caddy"


# --- the firm's app, which trusts Remote-* headers ------------------------------------------

def upstream_app(environ, start_response):
    """Shows who the web server says is signed in, as an app trusting Remote-User would."""
    email = environ.get("HTTP_REMOTE_EMAIL", "")
    body = (
        "<!doctype html><html lang='en'><head><title>Shared files</title></head><body><main>"
        "<h1>Shared files</h1>"
        f"<p>Signed in as <span id='remote-email'>{html.escape(email) or 'nobody'}</span></p>"
        f"<p>User <span id='remote-user'>{html.escape(environ.get('HTTP_REMOTE_USER', ''))}"
        f"</span>, role <span id='remote-groups'>"
        f"{html.escape(environ.get('HTTP_REMOTE_GROUPS', ''))}</span></p>"
        f"<p>Path <span id='path'>{html.escape(environ.get('PATH_INFO', ''))}</span></p>"
        "</main></body></html>"
    ).encode()
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"),
                              ("Content-Length", str(len(body)))])
    return [body]


class Upstream:
    """The upstream app on 127.0.0.1:<port> in a thread."""

    def __init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, upstream_app, threaded=True)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="upstream")

    def start(self) -> "Upstream":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)


# --- running a server process -------------------------------------------------------------

class Process:
    """A server process with its log in `folder`, answering on 127.0.0.1:`port`."""

    name = "server"

    def __init__(self, folder: Path, port: Optional[int] = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.log_path = folder / f"{self.name}.log"
        self.process: Optional[subprocess.Popen] = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def env(self) -> dict[str, str]:
        return dict(os.environ)

    def start(self, timeout: float = 20) -> "Process":
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(self.command(), cwd=self.folder, env=self.env(),
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.name} exited at start:\n{self.log()}")
            try:
                with socket_to(self.port):
                    return self
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise AssertionError(f"{self.name} did not listen in {timeout} s:\n{self.log()}")

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)

    def log(self) -> str:
        logs = [self.log_path, *sorted(self.folder.glob("*.log"))]
        return "\n".join(p.read_text(errors="replace") for p in dict.fromkeys(logs) if p.exists())


class socket_to:
    def __init__(self, port: int) -> None:
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=1)

    def __enter__(self):
        return self.sock

    def __exit__(self, *exc) -> None:
        self.sock.close()


def request(port: int, method: str, path: str, host: str, headers: Optional[dict] = None,
            body: Optional[bytes] = None, timeout: float = 30):
    """One request to 127.0.0.1:`port` naming `host`: (status, headers, text)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Host": host, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.msg, response.read().decode(errors="replace")
    finally:
        conn.close()


# --- nginx ----------------------------------------------------------------------------------

def nginx_site(host: str, port: int, clientgate_port: int, upstream_port: int) -> str:
    """docs/forward-auth/nginx.conf with the test's host and ports, over plain HTTP."""
    text = (DOCS / "nginx.conf").read_text()
    # No TLS and no IPv6 here; the port-80 servers (a redirect, and the catch-all) get a port
    # of their own, and the access log (without tokens) goes to the test's folder.
    text = re.sub(r"\n\s*(ssl_[a-z_]+|listen \[::\]:\d+)[^\n]*", "", text)
    text = text.replace("listen 443 ssl http2 default_server;",
                        f"listen 127.0.0.1:{port} default_server;")
    text = text.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{port};")
    plain = free_port()
    text = text.replace("listen 80 default_server;", f"listen 127.0.0.1:{plain} default_server;")
    text = text.replace("listen 80;", f"listen 127.0.0.1:{plain};")
    text = text.replace("/var/log/nginx/access.log", "site-access.log")  # in nginx's -p folder
    text = text.replace("portal.firm.co.uk", host)
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{clientgate_port}")
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{upstream_port}")


class Nginx(Process):
    """Debian's nginx (auth_request), `daemon off`, everything of its own in `folder`."""

    name = "nginx"

    def __init__(self, folder: Path, site: str, port: int) -> None:
        super().__init__(folder, port)
        temp = folder / "temp"
        temp.mkdir(exist_ok=True)
        (folder / "nginx.conf").write_text(f"""
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log {folder}/access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{site}
}}
""")

    def command(self) -> list[str]:
        return [NGINX, "-p", str(self.folder), "-c", str(self.folder / "nginx.conf"),
                "-e", str(self.folder / "error.log")]


# --- Caddy ----------------------------------------------------------------------------------

def caddy_site(portal_host: str, files_host: str, port: int, clientgate_port: int,
               upstream_port: int) -> str:
    """docs/forward-auth/Caddyfile with the test's hosts and ports, over plain HTTP."""
    text = (DOCS / "Caddyfile").read_text()
    text = text.replace("portal.firm.co.uk {", f"http://{portal_host}:{port} {{")
    text = text.replace("files.firm.co.uk {", f"http://{files_host}:{port} {{")
    text = text.replace("127.0.0.1:8000", f"127.0.0.1:{clientgate_port}")
    return text.replace("127.0.0.1:8080", f"127.0.0.1:{upstream_port}")


class Caddy(Process):
    """Debian's caddy (forward_auth): admin API off, no automatic HTTPS, HOME in `folder`."""

    name = "caddy"

    def __init__(self, folder: Path, site: str, port: int) -> None:
        super().__init__(folder, port)
        (folder / "Caddyfile").write_text(
            "{\n    admin off\n    auto_https off\n"
            f"    storage file_system {folder / 'data'}\n}}\n\n{site}")

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(HOME=str(self.folder), XDG_CONFIG_HOME=str(self.folder / "config"),
                   XDG_DATA_HOME=str(self.folder / "data"))
        return env

    def command(self) -> list[str]:
        return [CADDY, "run", "--config", str(self.folder / "Caddyfile"),
                "--adapter", "caddyfile"]


# --- ClientGate under gunicorn, as the guide runs it ------------------------------------------

class Client:
    """One browser-like client talking to a web server: keeps cookies, posts CSRF tokens."""

    def __init__(self, port: int, host: str) -> None:
        self.port, self.host = port, host
        self.cookies: dict[str, str] = {}
        self.csrf: Optional[str] = None

    def send(self, method: str, path: str, data: Optional[dict] = None,
             headers: Optional[dict] = None, host: Optional[str] = None):
        from http.cookies import SimpleCookie
        from urllib.parse import urlencode

        from tests.conftest import CSRF_IN_PAGE

        all_headers = {"User-Agent": "forward-auth-test", **(headers or {})}
        body = None
        if data is not None:
            body = urlencode({**data, "csrf_token": self.csrf or ""}).encode()
            all_headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self.cookies:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, response_headers, text = request(self.port, method, path, host or self.host,
                                                 all_headers, body)
        for header in response_headers.get_all("Set-Cookie") or ():
            jar = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value:
                    self.cookies[name] = morsel.value
                else:
                    self.cookies.pop(name, None)
        match = CSRF_IN_PAGE.search(text)
        if match:
            self.csrf = match.group(1) or match.group(2)
        return status, response_headers, text

    def get(self, path: str, **kw):
        return self.send("GET", path, **kw)

    def sign_in(self, smtp, email: str = "client@example.com", next_url: str = "") -> str:
        """Password, then the code from the message that arrived; returns where it led."""
        from urllib.parse import quote

        from tests.conftest import TEST_PASSWORD

        login = "/login" + (f"?next={quote(next_url, safe='')}" if next_url else "")
        self.get(login)
        count = len(smtp.messages)
        status, _, text = self.send("POST", login, {"email": email, "password": TEST_PASSWORD})
        assert status == 302, text
        smtp.wait_for(count + 1, timeout=30)
        code = smtp.last_to(email).code
        self.get("/login/code")
        status, headers, text = self.send("POST", "/login/code", {"code": code})
        assert status == 302, text
        return headers["Location"]
