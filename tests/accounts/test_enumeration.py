"""No account enumeration through "forgotten password", invitations or changing email."""

from __future__ import annotations

import statistics
import time

from tests.conftest import Browser

CLIENT = "client@example.com"


def timed_post(b: Browser, path: str, data: dict, csrf: str) -> float:
    started = time.perf_counter()
    response = b.client.post(path, data={**data, "csrf_token": csrf})
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    return elapsed


def test_forgot_takes_the_same_time_for_known_and_unknown_addresses(app, user, browser):
    """Nothing is sent inside the request, so both answers cost a few database statements."""
    csrf = browser.csrf_for("/password/forgot")
    known, unknown = [], []
    for n in range(12):  # interleaved, so load on the machine hits both alike
        # A fresh address each time for the unknown side; the known one is capped after 3
        # sends, so the first 3 known requests (which do queue a message) are what we compare.
        unknown.append(timed_post(browser, "/password/forgot",
                                  {"email": f"nobody{n}@example.com"}, csrf))
        known.append(timed_post(browser, "/password/forgot", {"email": CLIENT}, csrf))
    sending, quiet = known[:3], unknown[:3]
    # Well under a human-noticeable or network-measurable gap; an inline SMTP send or a
    # password hash on one side only would be tens of milliseconds.
    gap = abs(statistics.median(sending) - statistics.median(quiet))
    assert gap < 0.015, (sending, quiet)
    assert abs(statistics.median(known) - statistics.median(unknown)) < 0.015, (known, unknown)
