"""Fifth review, through Debian's nginx and caddy running the guide's files (docs/forward-auth/).

The app behind is a raw HTTP server that shows exactly what reached it (request line and
headers) and answers a WebSocket handshake with 101, then echoes what it is sent.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import socketserver
import threading
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from blueprints.safety import NEXT_LONGEST
from tests.conftest import free_port
from tests.federation.conftest import clientgate_under_gunicorn
from tests.federation.web_servers import (CADDY, NGINX, Caddy, Client, Nginx, caddy_site,
                                          nginx_site)
from tests.production.conftest import module_smtp  # noqa: F401 - fixture

pytestmark = [pytest.mark.slow]
needs_nginx = pytest.mark.skipif(not os.path.exists(NGINX), reason="no Debian nginx")
needs_caddy = pytest.mark.skipif(not os.path.exists(CADDY), reason="no Debian caddy")

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.request.recv(65536)
            if not chunk:
                return
            head += chunk
        head, _, rest = head.partition(b"\r\n\r\n")
        line, *fields = head.decode("latin-1").split("\r\n")
        headers = [tuple(part.strip() for part in f.split(":", 1)) for f in fields if ":" in f]
        named = {name.lower(): value for name, value in headers}
        if named.get("upgrade", "").lower() == "websocket":
            accept = base64.b64encode(hashlib.sha1(
                (named.get("sec-websocket-key", "") + WS_GUID).encode()).digest()).decode()
            self.request.sendall(
                ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                 f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
            if rest:
                self.request.sendall(rest)
            while True:
                data = self.request.recv(65536)
                if not data:
                    return
                self.request.sendall(data)
        body = json.dumps({"line": line, "headers": headers}).encode()
        self.request.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                             b"Connection: close\r\nContent-Length: "
                             + str(len(body)).encode() + b"\r\n\r\n" + body)


class _Server(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True


class RawApp:
    """The firm's app on 127.0.0.1, in a thread."""

    def __init__(self) -> None:
        self.server = _Server(("127.0.0.1", 0), _Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send(port: int, host: str, target: str, headers: dict, timeout: float = 20):
    """One raw request: (status, headers in lower case, body, the open socket)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    lines = [f"GET {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *fields = head.decode("latin-1").split("\r\n")
    found = {}
    for field in fields:
        name, _, value = field.partition(":")
        found[name.strip().lower()] = value.strip()
    status = int(status_line.split()[1])
    if status != 101:
        length = int(found.get("content-length", "0") or 0)
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                break
            body += chunk
    return status, found, body, sock


def cookie_of(client: Client) -> str:
    return "; ".join(f"{k}={v}" for k, v in client.cookies.items())


def what_the_app_got(body: bytes) -> dict:
    return json.loads(body)


@pytest.fixture(scope="module")
def nginx_front(tmp_path_factory, module_smtp):  # noqa: F811
    port = free_port()
    folder = tmp_path_factory.mktemp("review5-nginx")
    app = RawApp()
    rules = "localhost/files/ any Shared files; localhost/files/staff/ support,admin"
    with clientgate_under_gunicorn(folder, module_smtp, f"http://localhost:{port}",
                                   ACCESS_RULES=rules) as (gunicorn, _):
        nginx = Nginx(folder, nginx_site("localhost", port, gunicorn.port, app.port), port)
        try:
            nginx.start()
            client = Client(port, f"localhost:{port}")
            client.sign_in(module_smtp)
            yield type("Front", (), {"port": port, "host": f"localhost:{port}",
                                     "client": client, "folder": folder, "app": "/files",
                                     "forwarded_host": "localhost"})
        finally:
            nginx.stop()
            app.stop()


PORTAL, FILES = "portal.cg.localhost", "files.cg.localhost"


@pytest.fixture(scope="module")
def caddy_front(tmp_path_factory, module_smtp):  # noqa: F811
    port = free_port()
    folder = tmp_path_factory.mktemp("review5-caddy")
    app = RawApp()
    with clientgate_under_gunicorn(
        folder, module_smtp, f"http://{PORTAL}:{port}", PROTECTED_HOSTS=FILES,
        SESSION_COOKIE_DOMAIN="cg.localhost",
        ACCESS_RULES=f"{FILES} any Shared files; {FILES}/staff/ support,admin",
    ) as (gunicorn, _):
        caddy = Caddy(folder, caddy_site(PORTAL, FILES, port, gunicorn.port, app.port), port)
        try:
            caddy.start()
            client = Client(port, f"{PORTAL}:{port}")
            client.sign_in(module_smtp)
            yield type("Front", (), {"port": port, "host": f"{FILES}:{port}",
                                     "portal": f"http://{PORTAL}:{port}", "client": client,
                                     "app": "", "forwarded_host": f"{FILES}:{port}"})
        finally:
            caddy.stop()
            app.stop()


@pytest.fixture(params=[pytest.param("nginx", marks=needs_nginx),
                        pytest.param("caddy", marks=needs_caddy)])
def front(request):
    """Each web server in turn, in front of the same raw app: nginx serves it under /files/
    of the portal's host, Caddy on a host of its own."""
    return request.getfixturevalue(f"{request.param}_front")


def send_to_app(front, path: str, headers: dict):
    """`send` to the app's `path` through this front, signed in."""
    return send(front.port, front.host, front.app + path,
                {**headers, "Cookie": cookie_of(front.client)})


# --- a closed area reached through an open one ------------------------------------------------

@pytest.mark.parametrize("path", ["/staff/../plans", "/staff/%2e%2e/plans", "/staff//../plans",
                                  "/STAFF/plans", "/Staff"])
def test_no_path_the_app_reads_as_the_staff_area_passes(front, path):
    status, _, body, sock = send_to_app(front, path, {})
    sock.close()
    assert status == 403, body[:300]
    assert b"You cannot open this page" in body


def test_signed_out_the_apps_script_gets_401_in_json_and_a_page_the_sign_in(front):
    # No session cookie: nginx asks twice (the 401, then the refusal with the method), Caddy
    # once; both must pass the browser's Sec-Fetch-Mode on and ClientGate's answer back.
    status, headers, body, sock = send(front.port, front.host, front.app + "/list.json",
                                       {"Sec-Fetch-Mode": "cors", "Sec-Fetch-Dest": "empty"})
    sock.close()
    assert status == 401, body[:300]
    assert headers["content-type"] == "application/json"
    assert json.loads(body)["error"] == "not_signed_in"
    status, headers, body, sock = send(front.port, front.host, front.app + "/list.json",
                                       {"Sec-Fetch-Mode": "navigate"})
    sock.close()
    assert status == 302 and "/login?next=" in headers["location"]


def test_a_long_address_reaches_the_app_for_a_signed_in_client(front):
    # nginx takes a request line of up to 8 KB; ClientGate refused any address over 4096
    # characters as the web server's setup, so a long search got a refusal page.
    query = "q=" + "a" * 6000
    status, _, body, sock = send_to_app(front, "/search?" + query, {})
    sock.close()
    assert status == 200, body[:300]
    assert what_the_app_got(body)["line"] == f"GET {front.app}/search?{query} HTTP/1.1"


def test_signed_out_a_long_address_comes_back_after_the_sign_in(front):
    # The sign-in carries an address of up to NEXT_LONGEST characters back (it was 512: a
    # longer one landed the client on the portal). Quoted once more in the redirect, the
    # address grows; the redirect must still fit what the web server reads of a response.
    base = f"http://{front.host}{front.app}/search?"
    query = "q=%C3%A9t%C3%A9&a=1/2" * 60
    url = base + query[:NEXT_LONGEST - len(base)]
    status, headers, body, sock = send(front.port, front.host, url[len(f"http://{front.host}"):],
                                       {"Sec-Fetch-Mode": "navigate"})
    sock.close()
    assert status == 302, body[:300]
    assert parse_qs(urlsplit(headers["location"]).query)["next"] == [url]


# --- WebSockets -------------------------------------------------------------------------------

HANDSHAKE = {"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
             "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def assert_tunnel_open(sock) -> None:
    sock.sendall(b"\x81\x05hello")
    got = b""
    while len(got) < 7:
        chunk = sock.recv(64)
        if not chunk:
            break
        got += chunk
    sock.close()
    assert got == b"\x81\x05hello"


def test_a_websocket_reaches_the_app_for_a_signed_in_client(front):
    status, _, body, sock = send_to_app(front, "/live", HANDSHAKE)
    assert status == 101, body[:300]
    assert_tunnel_open(sock)
    # Without a session, the handshake is sent to sign in; to a closed area, refused.
    status, headers, _, sock = send(front.port, front.host, front.app + "/live", HANDSHAKE)
    sock.close()
    assert status == 302 and "/login?next=" in headers["location"]
    status, _, _, sock = send_to_app(front, "/staff/live", HANDSHAKE)
    sock.close()
    assert status == 403

# --- what Caddy puts into the question and passes to the app ------------------------------------

@needs_caddy
@pytest.mark.parametrize("query", ["q=" + "a" * 4078, "name=%00", "next=x&csrf_token=1"])
def test_the_apps_query_string_stays_out_of_caddys_question(caddy_front, query):
    # forward_auth's `uri /auth/verify` kept the page's query: ClientGate was asked
    # /auth/verify?<the app's query>, so a long one met gunicorn's 4094-byte request line
    # (414) though X-Forwarded-Uri names it whole, and a %00 in it ClientGate's "not text"
    # page (400).
    status, _, body, sock = send(caddy_front.port, caddy_front.host, "/search?" + query,
                                 {"Cookie": cookie_of(caddy_front.client)})
    sock.close()
    assert status == 200, body[:300]
    assert what_the_app_got(body)["line"] == f"GET /search?{query} HTTP/1.1"


@needs_caddy
def test_no_remote_header_of_the_browsers_reaches_the_app_through_caddy(caddy_front):
    # Some servers (CGI, PHP, older Puma) read Remote_User as Remote-User: a browser's own
    # must not reach the app beside ClientGate's.
    forged = {"Remote_User": "9", "Remote_Email": "boss@example.com", "remote_groups": "admin",
              "Remote-User": "9", "Cookie": cookie_of(caddy_front.client)}
    status, _, body, sock = send(caddy_front.port, caddy_front.host, "/x", forged)
    sock.close()
    assert status == 200, body[:300]
    remote = [(name.lower(), value) for name, value in what_the_app_got(body)["headers"]
              if name.lower().replace("_", "-").startswith("remote-")]
    assert sorted(remote) == [("remote-email", "client@example.com"), ("remote-groups", "client"),
                              ("remote-name", "client@example.com"), ("remote-user", "1")]



# --- headers that name another page or host -------------------------------------------------

# IIS (URL Rewrite), Symfony before 3.4.14 and Zend read X-Original-URL / X-Rewrite-URL as the
# address asked for (CVE-2018-14773); apps told to trust their proxy build links from
# Forwarded, X-Forwarded-Host and -Prefix. ClientGate judged the request line, so a browser's
# own would choose another page, or the host in the app's links.
FORGED_ADDRESS = {"X-Original-URL": "/files/staff/plans", "X-Rewrite-URL": "/files/staff/plans",
                  "Forwarded": "host=evil.example", "X-Forwarded-Host": "evil.example",
                  "X-Forwarded-Prefix": "/evil"}


def forwarded_to_the_app(body: bytes) -> dict:
    named = {name.lower(): value for name, value in what_the_app_got(body)["headers"]}
    return {name: named.get(name) for name in (
        "x-original-url", "x-rewrite-url", "forwarded", "x-forwarded-host", "x-forwarded-prefix")}


def test_the_app_gets_no_address_of_the_browsers_own(front):
    status, _, body, sock = send_to_app(front, "/report", FORGED_ADDRESS)
    sock.close()
    assert status == 200, body[:300]
    assert forwarded_to_the_app(body) == {
        "x-original-url": None, "x-rewrite-url": None, "forwarded": None,
        "x-forwarded-host": front.forwarded_host, "x-forwarded-prefix": None}

# The client's address: the app's X-Forwarded-For was the web server's word, but a browser's
# own X-Real-IP and True-Client-IP passed, which apps read first (chi's RealIP, so Gitea):
# a client could pose as another address in the app's logs and limits.
FORGED_CLIENT = {"X-Real-IP": "203.0.113.9", "True-Client-IP": "203.0.113.9",
                 "X-Forwarded-For": "203.0.113.9"}


def client_address_headers(body: bytes) -> dict:
    named = {name.lower(): value for name, value in what_the_app_got(body)["headers"]}
    return {name: named.get(name) for name in ("x-real-ip", "true-client-ip", "x-forwarded-for")}


def test_the_app_is_told_the_clients_real_address_only(front):
    status, _, body, sock = send_to_app(front, "/report", FORGED_CLIENT)
    sock.close()
    assert status == 200, body[:300]
    assert client_address_headers(body) == {
        "x-real-ip": "127.0.0.1", "true-client-ip": None, "x-forwarded-for": "127.0.0.1"}

@needs_nginx
def test_nginx_logs_no_link_token(nginx_front):
    """The forward-auth file replaces the portal's own (guide, section 7), so it keeps its
    access log without the one-time tokens of reset, invitation and new-address links."""
    token = "tok" + "e" * 40
    for path in (f"/password/reset/{token}", f"/welcome/{token}",
                 f"/account/email/confirm/{token}"):
        Client(nginx_front.port, nginx_front.host).get(path)
    nginx_front.client.get("/portal")
    log_file = nginx_front.folder / "site-access.log"
    for _ in range(50):  # nginx writes a request's line just after its answer has gone
        log = log_file.read_text()
        if "GET /portal" in log:
            break
        time.sleep(0.1)
    assert "/welcome/..." in log and "/password/reset/..." in log and "GET /portal" in log
    assert token not in log
