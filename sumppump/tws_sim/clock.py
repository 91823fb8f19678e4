"""The simulator's clock and US equity market hours.

Everything time-dependent in the simulated world (the random walk, listed expiries, market hours,
historical pacing windows) reads :class:`SimClock`, so tests are deterministic and never sleep:
a frozen clock only moves when a test calls :meth:`SimClock.advance` (or ``SimTWS.advance``).
A running clock follows the wall clock from its start instant (used by ``sumppump sim``).

Holidays are not modelled: every Monday-Friday is a full trading day.
"""

from __future__ import annotations

import datetime as dt
import time
from zoneinfo import ZoneInfo

__all__ = [
    "DEFAULT_START",
    "NEW_YORK",
    "SimClock",
    "is_extended_session",
    "is_regular_session",
    "is_trading_day",
    "liquid_hours",
    "next_regular_open",
    "session_bounds",
    "trading_hours",
]

NEW_YORK = ZoneInfo("America/New_York")
UTC = dt.UTC

DEFAULT_START = dt.datetime(2026, 11, 25, 15, 0, tzinfo=UTC)
"""Wednesday 2026-11-25 10:00 New York: inside the regular session, so orders can fill."""

REGULAR_OPEN = dt.time(9, 30)
REGULAR_CLOSE = dt.time(16, 0)
EXTENDED_OPEN = dt.time(4, 0)
EXTENDED_CLOSE = dt.time(20, 0)


class SimClock:
    """A settable, advanceable UTC clock.

    ``running=False`` (the default) freezes time at ``start`` until :meth:`advance` or :meth:`set`.
    ``running=True`` lets it follow the monotonic wall clock from ``start`` (times ``speed``).
    """

    def __init__(
        self, start: dt.datetime = DEFAULT_START, *, running: bool = False, speed: float = 1.0
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("SimClock start must be timezone-aware")
        self._base = start.astimezone(UTC)
        self._running = running
        self._speed = speed
        self._wall_anchor = time.monotonic()
        self.start = self._base

    @property
    def running(self) -> bool:
        return self._running

    def now(self) -> dt.datetime:
        """The simulated time, timezone-aware UTC."""
        if not self._running:
            return self._base
        elapsed = (time.monotonic() - self._wall_anchor) * self._speed
        return self._base + dt.timedelta(seconds=elapsed)

    def timestamp(self) -> float:
        return self.now().timestamp()

    def today(self) -> dt.date:
        """The New York calendar date: the exchange's "today" (expiries, sessions, bars)."""
        return self.now().astimezone(NEW_YORK).date()

    def advance(self, seconds: float) -> dt.datetime:
        """Move the clock forward (negative values are refused); returns the new time."""
        if seconds < 0:
            raise ValueError("the simulated clock does not go backwards")
        self._base += dt.timedelta(seconds=seconds)
        return self.now()

    def set(self, when: dt.datetime) -> None:
        """Jump to ``when`` (timezone-aware); pacing windows and the walk follow."""
        if when.tzinfo is None:
            raise ValueError("SimClock.set needs a timezone-aware datetime")
        self._base = when.astimezone(UTC)
        self._wall_anchor = time.monotonic()

    def freeze(self) -> None:
        self._base = self.now()
        self._running = False

    def run(self) -> None:
        self._base = self.now()
        self._wall_anchor = time.monotonic()
        self._running = True


def is_trading_day(day: dt.date) -> bool:
    return day.weekday() < 5


def session_bounds(day: dt.date, *, extended: bool = False) -> tuple[dt.datetime, dt.datetime]:
    """Open and close of ``day``'s session as UTC datetimes."""
    start, end = (EXTENDED_OPEN, EXTENDED_CLOSE) if extended else (REGULAR_OPEN, REGULAR_CLOSE)
    return (
        dt.datetime.combine(day, start, NEW_YORK).astimezone(UTC),
        dt.datetime.combine(day, end, NEW_YORK).astimezone(UTC),
    )


def is_regular_session(when: dt.datetime) -> bool:
    local = when.astimezone(NEW_YORK)
    return is_trading_day(local.date()) and REGULAR_OPEN <= local.time() < REGULAR_CLOSE


def is_extended_session(when: dt.datetime) -> bool:
    local = when.astimezone(NEW_YORK)
    return is_trading_day(local.date()) and EXTENDED_OPEN <= local.time() < EXTENDED_CLOSE


def next_regular_open(when: dt.datetime) -> dt.datetime:
    """The next regular-session open at or after ``when`` (``when`` itself when open)."""
    if is_regular_session(when):
        return when
    day = when.astimezone(NEW_YORK).date()
    for _ in range(10):
        open_at, _close = session_bounds(day)
        if is_trading_day(day) and open_at >= when:
            return open_at
        day += dt.timedelta(days=1)
    raise AssertionError("no trading day within 10 days")


def _hours(day: dt.date, days: int, start: dt.time, end: dt.time) -> str:
    parts = []
    for offset in range(days):
        d = day + dt.timedelta(days=offset)
        ymd = d.strftime("%Y%m%d")
        if is_trading_day(d):
            parts.append(f"{ymd}:{start:%H%M}-{ymd}:{end:%H%M}")
        else:
            parts.append(f"{ymd}:CLOSED")
    return ";".join(parts)


def trading_hours(day: dt.date, *, extended: bool, days: int = 7) -> str:
    """IB's ``tradingHours`` string (``20261125:0400-20261125:2000;20261128:CLOSED;...``)."""
    if extended:
        return _hours(day, days, EXTENDED_OPEN, EXTENDED_CLOSE)
    return _hours(day, days, REGULAR_OPEN, REGULAR_CLOSE)


def liquid_hours(day: dt.date, days: int = 7) -> str:
    """IB's ``liquidHours`` string: the regular session."""
    return _hours(day, days, REGULAR_OPEN, REGULAR_CLOSE)
