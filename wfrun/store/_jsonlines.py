"""Append-only JSON-lines files read from a byte cursor: the file store's histories and logs."""

from __future__ import annotations

import json
from typing import Any

import wfrun.store._appends as _appends
from wfrun.errors import StateError
from wfrun.store._jsonenc import encoder

_dump = encoder(allow_nan=True, default=str)


def append(path: str, records: list[dict[str, Any]], what: str = "log") -> None:
    """Append records, one JSON object per line, in one write (O_APPEND)."""
    lines = "".join([_dump(r) + "\n" for r in records])
    try:
        _appends.append_line(path, lines.encode())
    except OSError as exc:
        raise StateError(f"cannot append to {what} {path}: {exc.strerror}") from exc


def read(path: str, cursor: int = 0, what: str = "log") -> tuple[list[dict[str, Any]], int]:
    """The complete records after byte offset `cursor`, and the offset after the last of them."""
    try:
        with open(path, "rb") as fh:
            fh.seek(cursor)
            data = fh.read()
    except FileNotFoundError:
        return [], cursor
    except OSError as exc:
        raise StateError(f"cannot read {what} {path}: {exc.strerror}") from exc
    end = data.rfind(b"\n") + 1  # a torn last line waits until it is complete
    records: list[dict[str, Any]] = []
    for line in data[:end].splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records, cursor + end
