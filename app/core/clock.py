"""The one source of "now": always timezone-aware UTC; tests move it instead of sleeping."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_frozen_at: datetime | None = None


def now() -> datetime:
    if _frozen_at is not None:
        return _frozen_at
    return datetime.now(UTC).replace(microsecond=0)


@contextlib.contextmanager
def frozen(at: datetime) -> Iterator[None]:
    """Freeze the clock at `at` (tests only)."""
    global _frozen_at
    if at.tzinfo is None:
        raise ValueError("frozen() needs a timezone-aware datetime")
    previous = _frozen_at
    _frozen_at = at.astimezone(UTC)
    try:
        yield
    finally:
        _frozen_at = previous


def advance(delta: timedelta) -> None:
    """Move a frozen clock forward (tests only)."""
    global _frozen_at
    if _frozen_at is None:
        raise RuntimeError("advance() needs a frozen clock")
    _frozen_at = _frozen_at + delta


# Dates a booking service can mean: arithmetic on them (a day more, another zone) cannot
# leave the calendar, as it would next to year 1 or 9999.
EARLIEST_DATE = date(1970, 1, 1)
LATEST_DATE = date(2199, 12, 31)


def within_calendar(day: date) -> bool:
    return EARLIEST_DATE <= day <= LATEST_DATE


def to_utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("naive datetime")
    return moment.astimezone(UTC).replace(microsecond=0)


def is_valid_time_zone(name: str) -> bool:
    if name not in _zone_names():
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones())
    return _ZONES


def zone(name: str) -> tzinfo:
    return ZoneInfo(name)
