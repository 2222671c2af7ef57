"""The file store's bytes: encoding and verifying snapshots, checking history and log files
(no I/O beyond reading those for `wfrun doctor`)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from wfrun.errors import StateError
from wfrun.model import SCHEMA_VERSION, Run
from wfrun.store._jsonenc import encoder

_CHECKSUM_KEY = b'\n "checksum": "'
_REVISION_KEY = b'\n "revision": '
_dump = encoder(allow_nan=False)


def render_snapshot(schema_version: int, due: str | None, run_data: dict[str, Any]) -> bytes:
    """The snapshot file: readable JSON, a line per key and per step, checksummed.

    Each value goes through json's C encoder (`indent=` would switch json to its pure-Python
    encoder, several times slower on every write). The checksum line covers every other byte of
    the file, so a flipped byte anywhere, even inside a still-valid JSON string, is detected."""
    dump = _dump
    run = dict(run_data)
    steps = run.pop("steps")
    # the revision leads the file, so a process can tell versions apart by reading its head
    head = (f'{{\n "schema_version": {dump(schema_version)},\n'
            f' "revision": {dump(run.get("revision", 0))},\n').encode()
    lines = [f' "due": {dump(due)},', ' "run": {']
    lines.extend(f'  "{key}": {dump(value)},' for key, value in run.items())
    lines.append('  "steps": {')
    lines.append(",\n".join(f"   {_step_key(sid)}{dump(state)}" for sid, state in steps.items()))
    lines.append("  }\n }\n}\n")
    body = "\n".join(lines).encode()
    digest = hashlib.sha256(head + body).hexdigest()
    return head + f' "checksum": "sha256:{digest}",\n'.encode() + body


_STEP_KEYS: dict[str, str] = {}  # step id -> its encoded key (ids are strings: never stale)


def _step_key(step_id: str) -> str:
    key = _STEP_KEYS.get(step_id)
    if key is None:
        if len(_STEP_KEYS) >= 4096:
            _STEP_KEYS.clear()
        key = _STEP_KEYS[step_id] = f"{_dump(step_id)}: "
    return key


def head_revision(head: bytes) -> int:
    """The revision written at the head of a snapshot (its first 100 bytes); -1 if none."""
    start = head.find(_REVISION_KEY, 0, 100)
    if start < 0:
        return -1
    start += len(_REVISION_KEY)
    end = head.find(b",", start, start + 24)
    value = head[start:end] if end > 0 else b""
    return int(value) if value.isdigit() else -1


def checksum_ok(raw: bytes) -> bool:
    """Check the checksum line against the rest of the file's bytes."""
    start = raw.find(_CHECKSUM_KEY)
    if start < 0:
        return False
    end = raw.find(b"\n", start + 1)
    if end < 0:
        return False
    line = raw[start + len(_CHECKSUM_KEY): end]
    expected = b"sha256:" + hashlib.sha256(raw[: start + 1] + raw[end + 1:]).hexdigest().encode()
    return line == expected + b'",'


def lines_problem(path: str, what: str = "history") -> str | None:
    """Why a history or log file (`what`) cannot be fully read, or None (for `check`)."""
    bad: list[int] = []
    try:
        with open(path, "rb") as fh:
            for number, line in enumerate(fh, 1):
                try:
                    if not isinstance(json.loads(line), dict):
                        bad.append(number)
                except ValueError:
                    bad.append(number)
    except OSError as exc:
        return f"cannot read {what}: {exc.strerror}"
    if not bad:
        return None
    kind = "events" if what == "history" else "records"
    return (f"{len(bad)} line(s) are not JSON {kind} (first: line {bad[0]}); they are skipped "
            f"when the {what} is read")


def parse_snapshot(path: str, raw: bytes, verified: bool = False) -> tuple[Run, str | None]:
    """The run in a snapshot file and its due time; StateError (naming `path`) if the bytes
    are empty, not JSON, of another schema_version, or fail their checksum (not checked again
    if `verified`: bytes this process rendered or already verified)."""
    if not raw:
        raise StateError(f"snapshot {path} is empty; it is left as it is")
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        raise StateError(f"snapshot {path} is not valid JSON; it is left as it is") from None
    if not isinstance(envelope, dict) or "run" not in envelope:
        raise StateError(f"snapshot {path} is not a wfrun snapshot; it is left as it is")
    version = envelope.get("schema_version")
    if version != SCHEMA_VERSION:
        raise StateError(
            f"snapshot {path} has schema_version {version!r}, this wfrun reads "
            f"{SCHEMA_VERSION}; upgrade wfrun or restore the file"
        )
    data = envelope["run"]
    if not isinstance(data, dict) or not (verified or checksum_ok(raw)):
        raise StateError(
            f"snapshot {path} fails its checksum (changed outside wfrun or damaged); "
            "it is left as it is"
        )
    try:
        run = Run.from_dict(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"snapshot {path} is missing data ({exc}); it is left as it is") from None
    due = envelope.get("due")
    return run, due if isinstance(due, str) else None
