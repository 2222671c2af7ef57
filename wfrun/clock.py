"""Clocks: the engine asks an injected `Clock` for the time, never the system directly."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol

from wfrun.durations import parse_duration, parse_iso


class Clock(Protocol):
    """Something that tells the current UTC time."""

    def now(self) -> datetime:
        """Return the current time as an aware UTC datetime."""
        ...


class SystemClock:
    """The real wall clock, in UTC."""

    def now(self) -> datetime:
        """Return the system time in UTC."""
        return datetime.now(UTC)


class FakeClock:
    """A clock that only moves when told to (tests, `tick --now`)."""

    def __init__(self, start: datetime | str | None = None) -> None:
        self._now = moment(start) if start is not None else datetime.now(UTC)

    def now(self) -> datetime:
        """Return the clock's current time."""
        return self._now

    def set(self, moment: datetime | str) -> None:
        """Move the clock to `moment` (an aware datetime or ISO-8601 text)."""
        self._now = parse_iso(moment)

    def advance(self, duration: timedelta | str | float) -> datetime:
        """Move the clock forward by a duration (`1h`, seconds, or a timedelta)."""
        self._now = self._now + parse_duration(duration)
        return self._now


def moment(value: datetime | str) -> datetime:
    """An instant from ISO-8601 text, or from `+DURATION` (`+10m`, `+1d2h`): that long after
    the real time now, so that `tick --now +25h` means the same on any day."""
    if isinstance(value, str) and value.strip().startswith("+"):
        try:
            return datetime.now(UTC) + parse_duration(value.strip()[1:])
        except ValueError:  # (say what was typed, + included)
            raise ValueError(f"{value.strip()!r} is not +DURATION (use e.g. +30s, +10m, "
                             "+1h30m, +7d)") from None
    return parse_iso(value)
