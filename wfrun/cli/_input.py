"""Reading `--input` / `--data` (JSON text, `@file` or `-` for stdin) strictly and with a size cap."""

from __future__ import annotations

import sys
from typing import Any

from wfrun._jsoninput import DEFAULT_MAX_PAYLOAD, max_payload, parse_json
from wfrun.errors import UsageError

__all__ = ["DEFAULT_MAX_PAYLOAD", "check_text", "max_payload", "parse_json", "read_payload"]


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
        shown = _printable(path)
        try:
            with open(path, "rb") as fh:
                raw = fh.read(limit + 1)
        except OSError as exc:
            raise UsageError(f"cannot read {option} file {shown}: {exc.strerror}") from None
        except ValueError:  # a NUL byte in the name
            raise UsageError(f"cannot read {option} file {shown}: a file name has no NUL byte") from None
        source = f"{option} file {shown}"
    else:
        raw = value.encode("utf-8", "surrogateescape")
        source = option
    if len(raw) > limit:
        raise UsageError(
            f"{source} is over the {limit} byte limit; send less data or raise "
            "WFRUN_MAX_PAYLOAD"
        )
    return True, parse_json(raw, source)


def _printable(path: str) -> str:
    """A file name as it can be shown on one line: quoted if it holds control characters."""
    return path if path.isprintable() else repr(path)
