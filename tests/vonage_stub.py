"""A stand-in for Vonage's SMS API: HTTPS on 127.0.0.1 with its own `trustme` certificate.

The app talks to it through the real vonage SDK (VONAGE_REST_HOST=127.0.0.1:<port>,
VONAGE_CA_BUNDLE=<the stub's CA>). It keeps every message it receives, answers like Vonage
(`{"message-count": "1", "messages": [...]}`), can be told to refuse the next messages with
a Vonage status or an HTTP error, and builds delivery receipts, signed or not, for a message
it received, the way Vonage would send them to /webhooks/vonage/dlr.

    stub = VonageStub(); stub.start(); ...; stub.stop()
    app.config.update(stub.app_config())
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Optional
from urllib.parse import parse_qs

import trustme

CODE_IN_TEXT = re.compile(r"\b(\d{6})\b")
API_KEY = "stub-api-key"
API_SECRET = "stub-api-secret"

# Vonage's words for its statuses, used in the stub's refusals.
STATUS_TEXT = {
    "1": "Throttled", "2": "Missing params", "3": "Invalid params", "4": "Invalid credentials",
    "5": "Internal error", "6": "Invalid message", "7": "Number barred",
    "8": "Partner account barred", "9": "Partner quota exceeded", "15": "Invalid sender address",
    "29": "Non White-listed Destination", "33": "Number de-activated",
}


@dataclass
class ReceivedSms:
    """One message as the stub received it."""

    to: str
    sender: str
    text: str
    client_ref: Optional[str]
    type: Optional[str]
    params: dict
    authorization: Optional[str]
    message_id: Optional[str] = None  # set when the stub accepted it
    at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def code(self) -> Optional[str]:
        match = CODE_IN_TEXT.search(self.text)
        return match.group(1) if match else None


class _Handler(BaseHTTPRequestHandler):
    server: "_Server"

    def log_message(self, format, *args):  # keep the test output clean
        pass

    def _reply(self, status: int, body) -> None:
        data = json.dumps(body).encode() if not isinstance(body, bytes) else body
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        stub = self.server.stub
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        params = {key: values[0] for key, values in parse_qs(raw, keep_blank_values=True).items()}
        if self.path.split("?")[0] != "/sms/json":
            return self._reply(404, {"error": "not found"})
        received = ReceivedSms(
            to=params.get("to", ""), sender=params.get("from", ""), text=params.get("text", ""),
            client_ref=params.get("client-ref"), type=params.get("type"), params=params,
            authorization=self.headers.get("Authorization"),
        )
        status, body = stub._answer(received)
        stub._record(received)
        self._reply(status, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: "VonageStub"


class VonageStub:
    """Vonage's SMS API on 127.0.0.1 over HTTPS, recording what it receives."""

    def __init__(self, directory: Path, *, api_key: str = API_KEY,
                 api_secret: str = API_SECRET) -> None:
        self.api_key = api_key
        self.api_secret = api_secret
        self.received: list[ReceivedSms] = []
        self._answers: deque = deque()
        self._cond = threading.Condition()
        self._ca = trustme.CA()
        self._cert = self._ca.issue_cert("127.0.0.1")
        self.ca_path = str(Path(directory) / "vonage-stub-ca.pem")
        self._ca.cert_pem.write_to_path(self.ca_path)
        self._server: Optional[_Server] = None
        self._thread: Optional[threading.Thread] = None

    # --- running ----------------------------------------------------------------------

    def start(self) -> None:
        server = _Server(("127.0.0.1", 0), _Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._cert.configure_cert(context)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        server.stub = self
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="vonage-stub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(5)
            self._server = None

    @property
    def host(self) -> str:
        """What VONAGE_REST_HOST should be: "127.0.0.1:<port>"."""
        return f"127.0.0.1:{self._server.server_address[1]}"

    def app_config(self, **overrides) -> dict:
        """The settings that point an app's Vonage client here."""
        values = {
            "VONAGE_API_KEY": self.api_key, "VONAGE_API_SECRET": self.api_secret,
            "VONAGE_REST_HOST": self.host, "VONAGE_CA_BUNDLE": self.ca_path,
        }
        values.update(overrides)
        return values

    # --- scripting answers ------------------------------------------------------------

    def refuse_next(self, status: str, count: int = 1, error_text: Optional[str] = None) -> None:
        """Answer the next `count` messages with this Vonage status (e.g. "1" throttled)."""
        for _ in range(count):
            self._answers.append(("status", str(status), error_text))

    def fail_next_http(self, http_status: int, count: int = 1) -> None:
        """Answer the next `count` requests with this HTTP status and no message."""
        for _ in range(count):
            self._answers.append(("http", http_status, None))

    def _answer(self, received: ReceivedSms) -> tuple[int, dict]:
        expected = "Basic " + base64.b64encode(
            f"{self.api_key}:{self.api_secret}".encode()).decode()
        if received.authorization != expected:
            return 401, {"type": "https://developer.vonage.com/api-errors#unauthorized",
                         "title": "Unauthorized"}
        kind, value, text = self._answers.popleft() if self._answers else ("status", "0", None)
        if kind == "http":
            return value, {"title": "stub error", "status": value}
        message = {"to": received.to, "status": value}
        if value == "0":
            received.message_id = secrets.token_hex(8).upper()
            message.update({"message-id": received.message_id, "remaining-balance": "10.00",
                            "message-price": "0.03", "network": "23410"})
        else:
            message["error-text"] = text or STATUS_TEXT.get(value, "Error")
        if received.client_ref is not None:
            message["client-ref"] = received.client_ref
        return 200, {"message-count": "1", "messages": [message]}

    def _record(self, received: ReceivedSms) -> None:
        with self._cond:
            self.received.append(received)
            self._cond.notify_all()

    # --- reading what arrived ---------------------------------------------------------

    @property
    def accepted(self) -> list[ReceivedSms]:
        """Messages the stub accepted (status 0), oldest first."""
        return [sms for sms in self.received if sms.message_id]

    def wait_for(self, count: int = 1, timeout: float = 10) -> list[ReceivedSms]:
        """Wait until at least `count` requests arrived in all."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} SMS, got {len(self.received)}")
                self._cond.wait(left)
            return list(self.received)

    def last_to(self, number: str) -> ReceivedSms:
        """The newest accepted message to this number ("+447400123456" or "447400123456")."""
        for sms in reversed(self.received):
            if sms.to == number.lstrip("+") and sms.message_id:
                return sms
        raise AssertionError(f"no SMS accepted for {number}")

    # --- delivery receipts ------------------------------------------------------------

    def receipt(self, sms: ReceivedSms, status: str = "delivered", *, err_code: str = "0",
                signature_secret: Optional[str] = None, method: str = "md5hash",
                timestamp: Optional[int] = None, **extra) -> dict:
        """The fields of a Vonage delivery receipt for `sms`, signed if a secret is given."""
        now = datetime.now(timezone.utc)
        fields = {
            "msisdn": sms.to, "to": sms.sender, "network-code": "23410",
            "messageId": sms.message_id or "", "price": "0.03000000", "status": status,
            "scts": now.strftime("%y%m%d%H%M"), "err-code": err_code,
            "api-key": self.api_key, "message-timestamp": now.strftime("%Y-%m-%d %H:%M:%S"),
        }
        if sms.client_ref is not None:
            fields["client-ref"] = sms.client_ref
        fields.update({key.replace("_", "-"): value for key, value in extra.items()})
        if signature_secret:
            fields["timestamp"] = str(timestamp if timestamp is not None else int(time.time()))
            fields["nonce"] = secrets.token_hex(8)
            fields["sig"] = sign(fields, signature_secret, method)
        return fields


def sign(fields: dict, secret: str, method: str = "md5hash") -> str:
    """Vonage's request signature, written from its documentation, independently of the app.

    Sorted "&key=value" pairs (with "&" and "=" in values made "_"); "md5hash" appends the
    secret and takes the MD5, the other methods are HMACs keyed with the secret.
    """
    text = "".join(
        "&{}={}".format(key, str(fields[key]).replace("&", "_").replace("=", "_"))
        for key in sorted(fields) if key != "sig"
    )
    if method == "md5hash":
        return hashlib.md5((text + secret).encode()).hexdigest()
    digest = hmac.new(secret.encode(), text.encode(), method).hexdigest()
    return digest.upper()  # Vonage sends HMAC signatures in upper case
