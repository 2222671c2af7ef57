"""Strict JSON parsing and the payload size cap, shared by the CLI and the HTTP server."""

from __future__ import annotations

import json
import math
import os
from typing import Any

from wfrun.errors import UsageError

DEFAULT_MAX_PAYLOAD = 1024 * 1024


def max_payload() -> int:
    """The payload cap in bytes: `WFRUN_MAX_PAYLOAD` or 1 MiB (UsageError if it is not a
    whole number of bytes above 0)."""
    value = os.environ.get("WFRUN_MAX_PAYLOAD", "").strip()
    if not value:
        return DEFAULT_MAX_PAYLOAD
    if value.isascii() and value.isdigit() and len(value) <= 15 and int(value) > 0:
        return int(value)
    raise UsageError(f"WFRUN_MAX_PAYLOAD must be a whole number of bytes above 0 (such as "
                     f"{DEFAULT_MAX_PAYLOAD}), not {value!r}; fix or unset it")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400: valid JSON that no JSON writer can give back
        raise ValueError(f"the number {text[:40]} is too large (beyond ±1.8e308)")
    return value


def parse_json(raw: bytes, option: str) -> Any:
    """Parse JSON strictly: valid UTF-8, no NaN/Infinity (nor a number too large for a float),
    no duplicate keys, bounded depth."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} is not valid UTF-8 (byte {exc.start}); send JSON text") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants,
                           parse_float=_finite)
        if "\\u" in text:  # a lone surrogate escape parses, but cannot be stored as UTF-8
            json.dumps(value, ensure_ascii=False).encode("utf-8")
        return value
    except UnicodeEncodeError:
        raise UsageError(
            f"{option} has a \\u escape of a lone surrogate (\\ud800-\\udfff), which is not "
            "text; send valid Unicode"
        ) from None
    except json.JSONDecodeError as exc:
        raise UsageError(
            f"{option} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise UsageError(f"{option} is nested too deeply to be accepted") from None
    except ValueError as exc:  # duplicate keys, NaN, integers over Python's digit limit
        raise UsageError(f"{option} is not acceptable JSON: {exc}") from None
