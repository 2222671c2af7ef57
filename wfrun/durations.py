"""Durations (`500ms`, `1h30m`, a bare number of seconds) and UTC timestamps."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")


def parse_duration(value: object) -> timedelta:
    """Turn `10s`, `1h30m`, `500ms`, a number of seconds or a timedelta into a timedelta."""
    if isinstance(value, timedelta):
        seconds = value.total_seconds()
    elif isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration")
    elif isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip().lower().replace(" ", "")
        seconds = _parse_text(text, value)
    else:
        raise ValueError(f"{value!r} is not a duration (use e.g. 30s, 5m, 1h30m, 7d)")
    if seconds != seconds or seconds < 0 or seconds > 100 * 365 * 86400:
        raise ValueError(f"{value!r} is not a duration between 0 and 100 years")
    return timedelta(seconds=seconds)


def _parse_text(text: str, original: str) -> float:
    try:
        return float(text)
    except ValueError:
        pass
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"{original!r} is not a duration (use e.g. 500ms, 30s, 5m, 1h30m, 7d)")
    return total


def format_duration(delta: timedelta) -> str:
    """Render a timedelta compactly, e.g. `1h30m` or `500ms`."""
    total_ms = round(delta.total_seconds() * 1000)
    if total_ms < 1000:
        return f"{total_ms}ms"
    seconds = total_ms // 1000
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size:
            parts.append(f"{seconds // size}{unit}")
            seconds %= size
    return "".join(parts)


_last_iso: tuple[datetime | None, str] = (None, "")


def to_iso(moment: datetime) -> str:
    """Format an aware datetime as UTC ISO-8601 with a `Z`, to the millisecond."""
    global _last_iso
    last, text = _last_iso
    if moment == last:  # one transition stamps the same instant on several fields and events
        return text
    text = moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    _last_iso = (moment, text)
    return text


def parse_iso(value: object) -> datetime:
    """Parse an ISO-8601 time (naive times are taken as UTC) into an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(
                f"{value!r} is not an ISO-8601 time (use e.g. 2026-12-01T09:00:00Z)"
            ) from None
    else:
        raise ValueError(f"{value!r} is not an ISO-8601 time (use e.g. 2026-12-01T09:00:00Z)")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)
