"""The small pieces of wording the console is built from, without an app."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from services.support import diagnosis
from services.support.diagnosis import SignInFacts, minutes
from services.support import safe_cell
from services.support.timeline import device_words


@pytest.mark.parametrize("delta, words", [
    (timedelta(seconds=59), "under a minute"), (timedelta(seconds=60), "1 minute"),
    (timedelta(minutes=7, seconds=59), "7 minutes"), (timedelta(hours=3), "3 hours"),
])
def test_minutes(delta, words):
    assert minutes(delta) == words


@pytest.mark.parametrize("agent, words", [
    (None, "Unknown browser"), ("", "Unknown browser"),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
     "Gecko) Version/17.1 Mobile/15E148 Safari/604.1", "Mobile Safari 17 on iOS 17.1, phone"),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
     "Chrome/120.0.0.0 Safari/537.36", "Chrome 120 on Windows 10, computer"),
    ("curl/8.0", "curl 8, unknown device"),
    ("\x00" * 600, "Unknown browser, unknown device"),
])
def test_device_words(agent, words):
    assert device_words(agent) == words


@pytest.mark.parametrize("value, cell", [
    ("=SUM(A1)", "'=SUM(A1)"), ("+44", "'+44"), ("-1", "'-1"), ("@x", "'@x"),
    ("plain", "plain"), (None, ""), (12, "12"),
])
def test_csv_cells_are_not_formulas(value, cell):
    assert safe_cell(value) == cell


def test_a_sign_in_across_midnight_names_the_day():
    """Times on another day than the sign-in's say which day, so none is ambiguous."""
    began = datetime(2026, 11, 27, 23, 55, tzinfo=timezone.utc)
    sign_in = SimpleNamespace(
        id=1, status="expired", created_at=began, expires_at=began + timedelta(minutes=10),
        ended_at=began + timedelta(minutes=10), failed_attempts=0, channel="email",
        destination="a@example.com", user_agent=None, ip=None)
    entry = SimpleNamespace(type="code_entry", outcome="expired", detail={}, actor_id=None,
                            delivery_id=None, created_at=began + timedelta(minutes=20))
    found = diagnosis.diagnose(SignInFacts(sign_in=sign_in, events=[entry]), "Europe/London")
    [expired] = [f for f in found if f.kind == diagnosis.EXPIRED]
    assert "ran out at 00:05 on 28 Nov" in expired.text
    assert "typed a code at 00:15 on 28 Nov, 10 minutes after that" in expired.text


def test_bursts_survive_a_loop_in_bad_data():
    from services.support import _bursts

    at = datetime(2026, 11, 27, 10, 0, tzinfo=timezone.utc)
    one = SimpleNamespace(id=1, created_at=at, superseded_by_id=2)
    two = SimpleNamespace(id=2, created_at=at + timedelta(minutes=1), superseded_by_id=1)
    bursts = _bursts({1: one, 2: two})
    assert len(bursts[1]) <= 3 and len(bursts[2]) <= 3
