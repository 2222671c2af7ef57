"""What every manifest error message names (file, step, key), and small value checks shared
by the parts of a manifest."""

from __future__ import annotations

import json

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


def kind_of(value: object) -> str:
    """What a YAML value is, for messages: "nothing", "a list", "a str"..."""
    return "nothing" if value is None else f"a {type(value).__name__}"
