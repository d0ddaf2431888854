"""Request limits counted in memory ("memory://", one server) start no thread a request.

limits' own MemoryStorage started a `threading.Timer` on most hits, to walk every key 10 ms
later; extensions.QuietMemoryStorage does that walk in a request now and then instead.
"""

from __future__ import annotations

import threading
import time

import pytest
from limits.storage import storage_from_string

from extensions import QuietMemoryStorage, limiter


@pytest.fixture
def thread_starts(monkeypatch):
    """How many threads the process starts while the test runs."""
    started = []
    start = threading.Thread.start

    def counting(self, *args, **kwargs):
        started.append(self)
        return start(self, *args, **kwargs)

    monkeypatch.setattr(threading.Thread, "start", counting)
    return started


def test_memory_uris_are_counted_by_the_quiet_storage(app, limits_on):
    assert type(storage_from_string("memory://")) is QuietMemoryStorage
    limits_on()
    assert type(limiter.storage) is QuietMemoryStorage


def test_counted_requests_start_no_thread(app, user, limits_on, from_ip, thread_starts):
    limits_on(login_per_ip="5 per hour")
    thread_starts.clear()  # building a storage starts (and stops) one timer, once
    attacker = from_ip("198.51.100.7")
    for n in range(5):
        assert attacker.log_in(f"guess{n}@example.com", "password").status_code == 200
        time.sleep(0.03)  # long enough for limits' own timer to have run and ended
    assert attacker.log_in("guess9@example.com", "password").status_code == 429
    assert thread_starts == []


class Moved:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_what_ran_out_is_not_counted_and_is_swept_later(thread_starts):
    storage = QuietMemoryStorage()
    thread_starts.clear()
    storage.clock = moved = Moved()
    storage._next_sweep = moved.now + storage.sweep_every
    storage.incr("fixed", expiry=0.05)
    assert storage.incr("fixed", expiry=0.05) == 2
    assert storage.acquire_entry("moving", limit=2, expiry=0.05)
    assert storage.acquire_entry("moving", limit=2, expiry=0.05)
    assert not storage.acquire_entry("moving", limit=2, expiry=0.05)
    time.sleep(0.06)

    # Run out: neither counts, though both are still held until the next walk.
    assert storage.get("fixed") == 0
    assert storage.acquire_entry("moving", limit=2, expiry=0.05)
    storage.incr("other", expiry=0.05)
    assert "moving" in storage.events and "other" in storage.expirations

    time.sleep(0.06)
    moved.now += storage.sweep_every  # the next hit walks every key
    storage.incr("fresh", expiry=60)
    assert set(storage.storage) == set(storage.expirations) == {"fresh"}
    assert storage.events == {"moving": []}  # limits keeps the emptied list

    assert thread_starts == []
