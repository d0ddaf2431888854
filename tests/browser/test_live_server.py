"""The browser tests' server closes every response, even one the browser gave up on.

Chromium drops the favicon's connection when Back interrupts a page. Werkzeug's server then
raised from its `finally` before closing the response, and the open file's ResourceWarning
failed an unrelated test in CI (test_back_forward_cache_restore_is_reloaded).
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from flask import Flask
from werkzeug.serving import make_server

from tests.browser.conftest import ROOT, closed_before_sending

REQUESTS = 20


class Tracked:
    """A response body that remembers whether the server closed it."""

    def __init__(self, body) -> None:
        self.body = body
        self.closed = False

    def __iter__(self):
        return iter(self.body)

    def close(self) -> None:
        self.closed = True
        self.body.close()


def test_responses_are_closed_when_the_browser_resets_the_connection():
    site = Flask(__name__, static_folder=str(ROOT / "static"))
    bodies: list[Tracked] = []

    def tracking(environ, start_response):
        bodies.append(Tracked(site(environ, start_response)))
        return bodies[-1]

    server = make_server("127.0.0.1", 0, closed_before_sending(tracking), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        for _ in range(REQUESTS):
            # Read the first bytes of the answer, then reset the connection as a tab does.
            with socket.create_connection(("127.0.0.1", server.server_port)) as connection:
                connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                connection.sendall(b"GET /static/favicon.svg HTTP/1.1\r\nHost: localhost\r\n\r\n")
                assert connection.recv(12).startswith(b"HTTP/1.1 200")
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not (
                len(bodies) == REQUESTS and all(body.closed for body in bodies)):
            time.sleep(0.02)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
    assert len(bodies) == REQUESTS
    assert [body.closed for body in bodies] == [True] * REQUESTS
