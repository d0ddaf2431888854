"""Tests start several servers at once, each on a port from `free_port`: two alike made the
second one fail to start (nginx: "a duplicate default server"), which failed a test in CI."""

from __future__ import annotations

from types import SimpleNamespace

import tests.conftest as harness


class KernelGivingRepeats:
    """A socket whose bind to port 0 gets the ports the kernel gave in that CI run."""

    ports = iter([41937, 41937, 41937, 52011])

    def __init__(self) -> None:
        self.port = 0

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None

    def bind(self, address) -> None:
        self.port = next(self.ports)

    def getsockname(self):
        return ("127.0.0.1", self.port)


def test_free_port_never_hands_out_a_port_twice(monkeypatch):
    monkeypatch.setattr(harness, "_handed_out", set())
    monkeypatch.setattr(harness, "socket", SimpleNamespace(socket=KernelGivingRepeats))
    assert [harness.free_port(), harness.free_port()] == [41937, 52011]
