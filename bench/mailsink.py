"""An SMTP server on 127.0.0.1 for the bench: it notes when each message arrives and hands
its code to the client waiting for that address.

tests/conftest.py has an SMTP server too, but it keeps every message in a list, parses it with
the slow `email.policy.default` and only timestamps it after any delay; here thousands of
messages arrive in a run, each client waits for its own address, and the time a message
*reaches* the server is the figure we want, so this one indexes by address and stamps arrival.
"""

from __future__ import annotations

import asyncio
import email
import re
import socket
import threading
import time
from dataclasses import dataclass
from typing import Optional

from aiosmtpd.controller import Controller

CODE_IN_TEXT = re.compile(rb"\b(\d{6})\b")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Arrival:
    arrived: float  # time.monotonic() when the message reached the server
    accepted: float  # time.monotonic() when the server said 250 (after any delay)
    code: Optional[str]


class _Slot:
    __slots__ = ("event", "arrival")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.arrival: Optional[Arrival] = None


def code_in(content: bytes) -> Optional[str]:
    """The 6-digit code in the message's plain-text body (base64 or quoted-printable or not)."""
    message = email.message_from_bytes(content)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            match = CODE_IN_TEXT.search(part.get_payload(decode=True) or b"")
            if match:
                return match.group(1).decode()
    return None


class MailSink:
    """aiosmtpd on 127.0.0.1; `delay` seconds before it accepts each message (the slow server)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.delay = 0.0
        self.received = 0
        self._lock = threading.Lock()
        self._slots: dict[str, _Slot] = {}
        self._controller: Optional[Controller] = None

    def start(self) -> "MailSink":
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def _slot(self, address: str) -> _Slot:
        with self._lock:
            slot = self._slots.get(address)
            if slot is None:
                slot = self._slots[address] = _Slot()
            return slot

    def expect(self, address: str) -> _Slot:
        """Call before the action that sends to `address`; then `wait` on what it returns."""
        return self._slot(address.lower())

    @staticmethod
    def wait(slot: _Slot, timeout: float) -> Optional[Arrival]:
        return slot.arrival if slot.event.wait(timeout) else None

    def forget(self, address: str) -> None:
        with self._lock:
            self._slots.pop(address.lower(), None)

    # aiosmtpd handler hook
    async def handle_DATA(self, server, session, envelope):
        arrived = time.monotonic()
        delay = self.delay
        if delay:
            await asyncio.sleep(delay)
        arrival = Arrival(arrived=arrived, accepted=time.monotonic(),
                          code=code_in(envelope.content))
        with self._lock:
            self.received += 1
        for address in envelope.rcpt_tos:
            slot = self._slot(address.lower())
            slot.arrival = arrival
            slot.event.set()
        return "250 Message accepted"
