"""Reading `--input` / `--data` (JSON text, `@file` or `-` for stdin) strictly and with a size cap."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from wfrun.errors import UsageError

DEFAULT_MAX_PAYLOAD = 1024 * 1024


def max_payload() -> int:
    """The payload cap in bytes: `WFRUN_MAX_PAYLOAD` or 1 MiB."""
    value = os.environ.get("WFRUN_MAX_PAYLOAD", "")
    return int(value) if value.isdigit() and int(value) > 0 else DEFAULT_MAX_PAYLOAD


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"duplicate key {key!r}")
        result[key] = value
    return result


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def parse_json(raw: bytes, option: str) -> Any:
    """Parse JSON strictly: valid UTF-8, no NaN/Infinity, no duplicate keys, bounded depth."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{option} is not valid UTF-8 (byte {exc.start}); send JSON text") from None
    try:
        value = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants)
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


def check_text(value: str | None, option: str) -> None:
    """Refuse option text that is not valid Unicode (bytes the shell passed undecoded)."""
    if value is not None:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise UsageError(
                f"{option} is not valid UTF-8 text (character {exc.start + 1})"
            ) from None


def read_payload(value: str | None, option: str) -> tuple[bool, Any]:
    """Return (given, parsed value) for a JSON option that may be `@file` or `-`."""
    if value is None:
        return False, None
    limit = max_payload()
    if value == "-":
        raw = sys.stdin.buffer.read(limit + 1)
        source = f"{option} (stdin)"
    elif value.startswith("@"):
        path = value[1:]
        try:
            with open(path, "rb") as fh:
                raw = fh.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {option} file {path}: {exc.strerror}") from None
        source = f"{option} file {path}"
    else:
        raw = value.encode("utf-8", "surrogateescape")
        source = option
    if len(raw) > limit:
        raise UsageError(
            f"{source} is over the {limit} byte limit; send less data or raise "
            "WFRUN_MAX_PAYLOAD"
        )
    return True, parse_json(raw, source)
