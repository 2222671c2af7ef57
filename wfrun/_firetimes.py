"""Fire times of a workflow's `schedule:` (SPEC §11), in UTC.

Cron syntax and time zones come from croniter and the standard `zoneinfo` (with the `tzdata`
package where the system has no zone files); both are imported here only, and only when a
schedule is evaluated, so reading a manifest stays cheap.

Time-zone changes (DST), as Vixie cron and cronie handle them:
- a wall-clock time that a clock change skips (02:30 on a spring-forward night in Berlin)
  fires once, at the first instant after the gap (03:00 local): croniter's behaviour;
- a wall-clock time that occurs twice (02:30 on an autumn night) fires once, at its first
  occurrence, when the hour field is fixed (`30 2 * * *`, `0 1-3 * * *`); an expression whose
  hour field starts with `*` (`0 * * * *`, `*/15 * * * *`, `0 */2 * * *`) fires at every real
  occurrence, so an hourly schedule fires 25 times on a 25-hour day.

`every: D` fires at the whole multiples of D since 1970-01-01T00:00:00Z (`every: 15m` at :00,
:15, :30 and :45 of each hour), the same instants on every machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from wfrun._specs import Schedule, Workflow
from wfrun.errors import ManifestError

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class Timetable:
    """The fire times of one schedule; every instant taken and returned is an aware datetime."""

    def __init__(self, schedule: Schedule, path: str) -> None:
        self.schedule = schedule
        self.path = path  # the manifest, for messages
        self._zone: Any = _zone(schedule.timezone, path)
        self._cron: Any = None
        self._once_in_repeated_hour = False
        if schedule.cron is not None:
            from croniter import croniter

            try:
                probe = croniter(schedule.cron, datetime(2000, 1, 1, tzinfo=self._zone))
            except (ValueError, KeyError, TypeError) as exc:  # croniter's errors are ValueErrors
                raise _error(path, f"cron: {schedule.cron!r} is not a valid cron expression: "
                                   f"{_reason(exc)}") from None
            if len(probe.expressions) != 5:
                raise _error(path, f"cron: {schedule.cron!r} must have 5 fields (minute hour "
                                   "day-of-month month day-of-week)")
            self._cron = croniter
            self._once_in_repeated_hour = not str(probe.expressions[1]).startswith("*")

    @property
    def by_the_second(self) -> bool:
        """True if fire times may fall between whole minutes (`every` of seconds)."""
        every = self.schedule.every
        return every is not None and every.total_seconds() % 60 != 0

    def local(self, moment: datetime) -> datetime:
        """`moment` on the schedule's wall clock."""
        return moment.astimezone(self._zone)

    def after(self, moment: datetime) -> Iterator[datetime]:
        """Fire times strictly after `moment`, oldest first (endless; ManifestError for a cron
        expression that matches no date, such as `0 0 31 2 *`)."""
        every = self.schedule.every
        if every is not None:
            count = (moment - EPOCH) // every
            while True:
                count += 1
                yield EPOCH + count * every
        from croniter import CroniterBadDateError

        found = self._cron(self.schedule.cron, moment.astimezone(self._zone))
        while True:
            try:
                fire = found.get_next(datetime).astimezone(UTC)
            except CroniterBadDateError:
                raise _error(self.path, f"cron: {self.schedule.cron!r} never fires (it matches "
                                        "no date)") from None
            if self._once_in_repeated_hour and self._second_occurrence(fire):
                continue  # the wall-clock time was fired at its first occurrence
            yield fire

    def _second_occurrence(self, fire: datetime) -> bool:
        """True if `fire` is the second occurrence of an ambiguous wall-clock time."""
        wall = fire.astimezone(self._zone)  # (fromutc sets `fold` on the second one)
        return wall.fold == 1 and wall.replace(fold=0).utcoffset() != wall.utcoffset()

    def next_after(self, moment: datetime) -> datetime:
        """The first fire time after `moment`."""
        return next(self.after(moment))

    def between(self, start: datetime, end: datetime, limit: int) -> list[datetime]:
        """Fire times in (start, end], oldest first, at most `limit` of them."""
        found: list[datetime] = []
        if end <= start:
            return found
        for fire in self.after(start):
            if fire > end or len(found) >= limit:
                break
            found.append(fire)
        return found

    def latest(self, start: datetime, end: datetime) -> datetime | None:
        """The last fire time in (start, end], or None; looks back from `end` through growing
        windows, so a long gap costs a few look-ups, not one per missed fire time."""
        every = self.schedule.every
        if every is not None:
            aligned = EPOCH + ((end - EPOCH) // every) * every
            return aligned if aligned > start else None
        window = timedelta(hours=1)
        while True:
            begin = max(start, end - window)
            last: datetime | None = None
            for fire in self.after(begin):
                if fire > end:
                    break
                last = fire
            if last is not None or begin == start:
                return last
            window *= 4


def check(workflow: Workflow) -> None:
    """Raise ManifestError (naming the file and key 'schedule') unless the workflow's schedule
    can fire: a valid cron expression that matches some date, a known time zone, and an input
    that `input_schema` accepts."""
    schedule = workflow.schedule
    if schedule is None:
        return
    timetable = Timetable(schedule, workflow.path)
    timetable.next_after(datetime(2000, 1, 1, tzinfo=UTC))
    if workflow.input_schema is not None:
        from wfrun import _schema

        try:
            _schema.validate(workflow.input_schema, schedule.input, "the schedule's input")
        except ManifestError:
            raise
        except Exception as exc:  # SchemaViolation (or a schema that cannot be checked)
            message = getattr(exc, "message", str(exc))
            raise _error(workflow.path, f"input: {message}; it is the input of every run the "
                                        "schedule starts") from None


def _zone(name: str, path: str) -> Any:
    from zoneinfo import ZoneInfo

    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError, UnicodeError):  # ZoneInfoNotFoundError is a KeyError
        raise _error(path, f"timezone: {name!r} is not a known IANA time zone (such as "
                           "Europe/Berlin, America/New_York or UTC)") from None


def _reason(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    if text.startswith("[") and "]" in text:  # croniter repeats the expression first
        text = text[text.index("]") + 1:].strip()
    text = text.removeprefix("is not acceptable, ").removeprefix("is not acceptable")
    if "hash" in text.lower():
        text = "H (hashed) values are not supported"
    return text or "not acceptable"


def _error(path: str, message: str) -> ManifestError:
    return ManifestError(f"{path}: key 'schedule': {message}")
