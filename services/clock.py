"""The one clock. Everything stored is aware UTC; tests move time with `advance`."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

_offset = timedelta(0)


def now() -> datetime:
    """The current time as an aware UTC datetime."""
    return datetime.now(timezone.utc) + _offset


def advance(delta: timedelta) -> None:
    """Move the clock forward (tests only)."""
    global _offset
    _offset += delta


def reset() -> None:
    """Put the clock back to real time (tests only)."""
    global _offset
    _offset = timedelta(0)


def as_utc(moment: datetime | None) -> datetime | None:
    """Make a datetime read from the database aware UTC (SQLite drops the zone)."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


def local(moment: datetime, tz_name: str | None = None) -> datetime:
    """Convert a stored time to the portal's time zone, for people to read: `tz_name`, or the
    running app's PORTAL_TIMEZONE."""
    return as_utc(moment).astimezone(ZoneInfo(tz_name or _portal_timezone()))


def hhmm(moment: datetime, tz_name: str | None = None) -> str:
    """"10:05": a stored time as the clients and staff of the portal read it."""
    return local(moment, tz_name).strftime("%H:%M")


def hhmm_on(moment: datetime, day: date, tz_name: str | None = None) -> str:
    """"10:05", or "10:05 on 28 Nov" when `moment` is not on the local date `day`."""
    found = local(moment, tz_name)
    text = found.strftime("%H:%M")
    return text if found.date() == day else f"{text} on {found.strftime('%-d %b')}"


def _portal_timezone() -> str:
    from flask import current_app  # only a request or a command asks without naming the zone

    return current_app.config["PORTAL_TIMEZONE"]
