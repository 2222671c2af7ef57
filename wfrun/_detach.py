"""Detached copies of JSON values, so that step code and the run's state never share an object."""

from __future__ import annotations

import json
from typing import Any

_ENCODE = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
_IMMUTABLE = (str, int, float, bool, type(None))


def detached(value: Any) -> Any:
    """A copy of a JSON value that shares no mutable object with it (scalars as they are)."""
    if type(value) in _IMMUTABLE:
        return value
    return json.loads(_ENCODE(value))


def stored_form(value: Any) -> Any:
    """`value` as the state will hold it: a detached JSON copy. Raises TypeError or ValueError
    if it cannot be stored as JSON (NaN, lone surrogates, other types), RecursionError if it
    is nested too deeply."""
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is int:  # what the encoder would write, without building one (a step's usual output)
        int.__repr__(value)  # ValueError past the interpreter's limit on digits, as encoding
        return value
    text = _ENCODE(value)
    text.encode()  # a lone surrogate is valid in a str but not in the UTF-8 file
    return value if kind in _IMMUTABLE else json.loads(text)


def stored_or_problem(value: Any) -> tuple[Any, str | None]:
    """`value` as the state holds it (a detached copy), or why it cannot be stored as JSON."""
    try:
        return stored_form(value), None
    except (TypeError, ValueError) as exc:
        return None, str(exc)
    except RecursionError:
        return None, "it is nested too deeply"


def same_json(a: Any, b: Any) -> bool:
    """True if two JSON values are the same JSON text (object keys in any order): unlike `==`,
    `true` is not `1` and `1` is not `1.0` (an idempotent start compares inputs so)."""
    if a is b:
        return True
    return bool(json.dumps(a, sort_keys=True, ensure_ascii=False, default=repr)
                == json.dumps(b, sort_keys=True, ensure_ascii=False, default=repr))
