"""No account enumeration through "forgotten password": the same answer in the same time."""

from __future__ import annotations

import statistics
import time

from services.accounts import lifecycle
from tests.conftest import Browser

CLIENT = "client@example.com"
PAIRS = 15


def timed_post(b: Browser, data: dict, csrf: str) -> tuple[float, str]:
    started = time.perf_counter()
    response = b.client.post("/password/forgot", data={**data, "csrf_token": csrf})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed, response.get_data(as_text=True)


def test_forgot_takes_the_same_time_for_known_and_unknown_addresses(app, user, browser,
                                                                    monkeypatch):
    """Nothing is sent inside the request, so both answers cost a few database statements.

    Sending inline (an SMTP conversation) or hashing on one side only would cost tens of
    milliseconds on that side.
    """
    monkeypatch.setattr(lifecycle, "RESETS_PER_HOUR", PAIRS + 1)  # every known one queues
    csrf = browser.csrf_for("/password/forgot")
    known, unknown = [], []
    for n in range(PAIRS):  # interleaved, so load on the machine falls on both alike
        other = f"nobody{n}@example.com"
        spent, page = timed_post(browser, {"email": other}, csrf)
        unknown.append(spent)
        quiet = page.replace(other, "EMAIL")
        spent, page = timed_post(browser, {"email": CLIENT}, csrf)
        known.append(spent)
        assert page.replace(CLIENT, "EMAIL") == quiet
    gap = statistics.median(known) - statistics.median(unknown)
    print(f"forgot: median known {statistics.median(known) * 1000:.1f} ms, "
          f"unknown {statistics.median(unknown) * 1000:.1f} ms")
    assert abs(gap) < 0.02, (known, unknown)
