"""What every manifest error message names (file, step, key), and small value checks shared
by the parts of a manifest."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

from wfrun.durations import parse_duration
from wfrun.errors import ManifestError


class Checker:
    """Collects the context (file, step, key) that every manifest error message names."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, message: str, step: str | None = None, key: str | None = None) -> ManifestError:
        where = self.path
        if step is not None:
            where += f": step '{step}'"
        if key is not None:
            where += f": key '{key}'"
        return ManifestError(f"{where}: {message}")


def json_value(value: object) -> bool:
    """True if `value` comes back from JSON unchanged (a run's input must)."""
    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError, RecursionError):
        return False


_KINDS: dict[type, str] = {bool: "a boolean", int: "an integer", float: "a number",
                          str: "a string", list: "a list", dict: "a mapping", date: "a date",
                          datetime: "a date and time"}


def kind_of(value: object) -> str:
    """What a YAML value is, in YAML's words, for messages: "nothing", "a list", "a string",
    "an integer"..."""
    if value is None:
        return "nothing"
    name = type(value).__name__
    return _KINDS.get(type(value), f"{'an' if name[:1] in 'aeiou' else 'a'} {name}")


def shown(value: object) -> str:
    """A manifest value for messages, as YAML reads it: a string quoted ('text'), any other
    value as JSON (null, true, 3, ["a"]; a YAML date as written: 2026-01-01), never a Python
    repr such as None or ['a']."""
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, date):  # a datetime too
        return value.isoformat()
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        return repr(value)


def duration(value: object) -> timedelta:
    """`parse_duration` of a manifest value, whose ValueError shows the value as `shown` does
    (`null is not a duration`, not `None is not a duration`)."""
    try:
        return parse_duration(value)
    except ValueError as exc:
        message, python = str(exc), repr(value)
        if isinstance(value, str) or not message.startswith(python):
            raise
        raise ValueError(shown(value) + message[len(python):]) from None
