"""The file store's bytes: encoding and verifying snapshots, checking history and log files
(no I/O beyond reading those for `wfrun doctor`)."""

from __future__ import annotations

import hashlib
import json
import os
from json.encoder import encode_basestring
from typing import Any

from wfrun.durations import parse_iso
from wfrun.errors import StateError
from wfrun.model import PENDING, RUN_STATUSES, RUNNING, SCHEMA_VERSION, SKIPPED, Run
from wfrun.store._jsonenc import encoder

# what a damaged snapshot's holder does (docs/operating.md, "Crashes and recovery")
_WHAT_TO_DO = ": restore it from a backup, or move it out of runs/ with its due entries"
_CHECKSUM_KEY = b'\n "checksum": "'
_REVISION_KEY = b'\n "revision": '
_dump = encoder(allow_nan=False)


def render_snapshot(schema_version: int, due: str | None, run_data: dict[str, Any]) -> bytes:
    """The snapshot file: readable JSON, a line per key and per step, checksummed.

    Each value goes through json's C encoder (`indent=` would switch json to its pure-Python
    encoder, several times slower on every write). The checksum line covers every other byte of
    the file, so a flipped byte anywhere, even inside a still-valid JSON string, is detected."""
    dump, text, keys = _dump, encode_basestring, _STEP_KEYS
    head = (f'{{\n "schema_version": {dump(schema_version)},\n'
            f' "revision": {dump(run_data.get("revision", 0))},\n').encode()
    # one join of every piece (most values are strings: their encoder is called directly)
    body = "".join([
        f' "due": {dump(due)},\n "run": {{\n',
        *[f'  "{key}": {text(value) if type(value) is str else dump(value)},\n'
          for key, value in run_data.items() if key != "steps"],
        '  "steps": {\n',
        ",\n".join([f"   {keys.get(sid) or _step_key(sid)}{dump(state)}"
                   for sid, state in run_data["steps"].items()]),
        "\n  }\n }\n}\n",
    ]).encode()
    digest = hashlib.sha256(head + body).hexdigest()
    return b"".join((head, b' "checksum": "sha256:', digest.encode(), b'",\n', body))


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


def parse_snapshot(path: str, raw: bytes, verified: bool = False,
                   run_id: str | None = None) -> tuple[Run, str | None]:
    """The run in a snapshot file and its due time; StateError (naming `path`) if the bytes
    are empty, not JSON, of another schema_version, fail their checksum or hold values of the
    wrong shape (`shape_problem`) (neither checked again if `verified`: bytes this process
    rendered or already verified). With `run_id`, the run must be that one: a snapshot copied
    or linked under another run's name is refused too."""
    if not raw:
        raise StateError(f"snapshot {path} is empty; it is left as it is" + _WHAT_TO_DO)
    try:
        envelope = json.loads(raw)
    except (ValueError, RecursionError):
        raise StateError(f"snapshot {path} is not valid JSON; it is left as it is"
                         + _WHAT_TO_DO) from None
    if not isinstance(envelope, dict) or "run" not in envelope:
        raise StateError(f"snapshot {path} is not a wfrun snapshot; it is left as it is"
                         + _WHAT_TO_DO)
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
            "it is left as it is" + _WHAT_TO_DO
        )
    if not verified:
        problem = shape_problem(data)
        if problem:
            raise StateError(f"snapshot {path} is not a valid run: {problem} (changed outside "
                             "wfrun or damaged); it is left as it is" + _WHAT_TO_DO)
        if run_id is not None and data["run_id"] != run_id:
            raise StateError(
                f"snapshot {path} holds run {data['run_id']!r}, not {run_id!r} (copied, renamed "
                f"or linked by hand); it is left as it is: move it out of {os.path.dirname(path)}"
            )
    try:
        run = Run.from_dict(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"snapshot {path} is missing data ({exc}); it is left as it is"
                         + _WHAT_TO_DO) from None
    due = envelope.get("due")
    return run, due if isinstance(due, str) else None


# The types each value may have in a snapshot (JSON gives exactly these types: `type(v) in`
# is exact, so a bool is not taken for an int). A key not listed here (a field this store does
# not know, added since) is left to the model; a listed one that is absent takes its default.
_N = type(None)
_RUN_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "workflow": (str,), "created_at": (str,), "updated_at": (str,),
    "status": (str,), "error": (dict, _N), "steps": (dict,), "manifest_path": (str,),
    "code_hash": (dict,), "running_since": (str, _N), "revision": (int,),
    "parent": (dict, _N), "inbox": (list, _N),
}
_STEP_TYPES: dict[str, tuple[type, ...]] = {
    "status": (str,), "runs": (int,), "action": (str, _N), "error": (dict, _N),
    "started_at": (str, _N), "finished_at": (str, _N), "pause": (dict, _N),
    "trigger": (dict, _N), "reruns": (int,), "failures": (int,), "resumed_at": (str, _N),
    "child": (str, _N), "iterations": (list, _N), "answers": (list,), "nonces": (list,),
    "exec_nonce": (str, _N),
}
_RUN_REQUIRED = ("run_id", "workflow", "created_at", "updated_at", "steps")
_PAUSE_TYPES: dict[str, tuple[type, ...]] = {
    "kind": (str,), "since": (str,), "due_at": (str, _N), "nonce": (str,),
    "on_timeout": (str,), "max_retries": (int, _N), "ask": (int,), "label": (str,),
    "event": (str,),
}
_INBOX_TYPES: dict[str, tuple[type, ...]] = {  # see wfrun/engine/_inbox.py and _events.py
    "kind": (str,), "step": (str,), "nonce": (str,), "action": (str, _N), "request": (dict,),
    "at": (str,), "name": (str,), "source": (str,), "fields": (dict,),
}
_INBOX_REQUIRED = {  # the keys an entry of each kind must have (an unknown kind: kind and at)
    "resume": ("kind", "step", "nonce", "request", "at"),
    "event": ("kind", "name", "at", "source"),
}
_PAUSE_TIMES = ("since", "due_at")  # read as times by tick (the others are only shown)
_PARENT_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "step": (str,), "index": (int, _N), "notified": (str, _N),
}
_ERROR_TYPES: dict[str, tuple[type, ...]] = {
    "step": (str, _N), "type": (str, _N), "message": (str, _N), "traceback": (str, _N),
}
_EXPECTED = {str: "a string", int: "an integer", dict: "an object", list: "an array",
             _N: "null"}
_RUN_STATUSES = frozenset(RUN_STATUSES)
_STEP_STATUSES = frozenset((*RUN_STATUSES, PENDING, SKIPPED))


def run_from_json(text: str | bytes, run_id: str, what: str, what_to_do: str = "") -> Run:
    """The run a stored JSON document holds (a database row's, not a snapshot file's: no
    header); StateError naming `what` if it is not valid JSON, not a valid run, or another
    run's, ending with `what_to_do` (`: restore ...`). Its `revision` is left for the caller
    to set."""
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise StateError(f"{what} is not valid JSON; it is left as it is{what_to_do}") from None
    problem = shape_problem(data) if isinstance(data, dict) else "it is not a JSON object"
    if problem is None and data["run_id"] != run_id:
        problem = f"it holds run {data['run_id']!r}"
    if problem is not None:
        raise StateError(f"{what} is not a valid run: {problem} (changed outside wfrun); "
                         f"it is left as it is{what_to_do}")
    try:
        return Run.from_dict(data)
    except (KeyError, TypeError, AttributeError) as exc:
        raise StateError(f"{what} is missing data ({exc}); it is left as it is"
                         f"{what_to_do}") from None


def shape_problem(data: dict[str, Any]) -> str | None:
    """What in a snapshot's run is not what wfrun writes (a value of another type, an unknown
    status), as `where is VALUE, expected WHAT`; None if its shape is sound.

    Cheap (a type lookup per stored value): it runs on every snapshot read from disk, so that a
    value of the wrong type is reported as a damaged snapshot instead of failing the command
    that meets it."""
    problem = _wrong_types(data, _RUN_TYPES, "", required=_RUN_REQUIRED)
    if problem:
        return problem
    status = data.get("status", RUNNING)
    if status not in _RUN_STATUSES:
        return _wrong("status", status, "a run status")
    for key, types in (("parent", _PARENT_TYPES), ("error", _ERROR_TYPES)):
        value = data.get(key)
        if value is not None:
            problem = _wrong_types(value, types, f"{key}.", required=key == "parent")
            if problem:
                return problem
    inbox = data.get("inbox")
    if inbox:
        for n, item in enumerate(inbox):
            if type(item) is not dict:
                return _wrong(f"inbox[{n}]", item, "an object")
            kind = item.get("kind")
            required = _INBOX_REQUIRED.get(kind, ("kind", "at")) if type(kind) is str \
                else ("kind", "at")
            problem = _wrong_types(item, _INBOX_TYPES, f"inbox[{n}].", required=required)
            if problem:
                return problem
    for step_id, step in data["steps"].items():
        if not _step_ok(step):  # (the fast check; then what is wrong, for the message)
            return _step_problem(step, f"steps.{step_id}") or f"steps.{step_id} is not valid"
    return None


def _step_ok(step: Any) -> bool:
    """True if a step's shape is sound (what `_step_problem` checks, with no message)."""
    if type(step) is not dict:
        return False
    types = _STEP_TYPES
    for key, value in step.items():
        allowed = types.get(key)
        if allowed is not None and type(value) not in allowed:
            return False
    if step.get("status", PENDING) not in _STEP_STATUSES:
        return False
    pause = step.get("pause")
    if pause is not None:
        if "kind" not in pause:
            return False
        types = _PAUSE_TYPES
        for key, value in pause.items():
            allowed = types.get(key)
            if allowed is not None and type(value) not in allowed:
                return False
        if _bad_time(pause):
            return False
    error = step.get("error")
    if error is not None:
        types = _ERROR_TYPES
        for key, value in error.items():
            allowed = types.get(key)
            if allowed is not None and type(value) not in allowed:
                return False
    nonces = step.get("nonces")
    if nonces and not all(type(nonce) is str for nonce in nonces):
        return False
    iterations = step.get("iterations")
    return not iterations or all(_step_ok(it) for it in iterations)


def _step_problem(step: Any, where: str) -> str | None:
    """`shape_problem` for one step (or foreach iteration) at `where`."""
    if type(step) is not dict:
        return _wrong(where, step, "an object")
    problem = _wrong_types(step, _STEP_TYPES, where + ".")
    if problem:
        return problem
    status = step.get("status", PENDING)
    if status not in _STEP_STATUSES:
        return _wrong(f"{where}.status", status, "a step status")
    pause = step.get("pause")
    if pause is not None:
        problem = _wrong_types(pause, _PAUSE_TYPES, f"{where}.pause.", required=("kind",))
        if problem:
            return problem
        key = _bad_time(pause)
        if key:
            return _wrong(f"{where}.pause.{key}", pause[key], "an ISO-8601 time")
    error = step.get("error")
    if error is not None:
        problem = _wrong_types(error, _ERROR_TYPES, f"{where}.error.")
        if problem:
            return problem
    for n, nonce in enumerate(step.get("nonces", ())):
        if type(nonce) is not str:
            return _wrong(f"{where}.nonces[{n}]", nonce, "a string")
    for n, iteration in enumerate(step.get("iterations") or ()):
        problem = _step_problem(iteration, f"{where}.iterations[{n}]")
        if problem:
            return problem
    return None


def _bad_time(pause: dict[str, Any]) -> str | None:
    """The first of a pause's times (a string, or null) that is not an ISO-8601 time."""
    for key in _PAUSE_TIMES:
        value = pause.get(key)
        if value is not None:
            try:
                parse_iso(value)
            except ValueError:
                return key
    return None


def _wrong_types(data: dict[str, Any], types: dict[str, tuple[type, ...]], where: str,
                 required: bool | tuple[str, ...] = False) -> str | None:
    """The first key of `data` listed in `types` whose value has another type; with
    `required`, also a listed key that is missing (True: every listed key that takes no null;
    a tuple: those keys)."""
    for key, value in data.items():
        allowed = types.get(key)
        if allowed is not None and type(value) not in allowed:
            return _wrong(where + key, value,
                          " or ".join(_EXPECTED.get(t, t.__name__) for t in allowed))
    if required:
        names = required if isinstance(required, tuple) else [
            k for k, allowed in types.items() if _N not in allowed]
        for key in names:
            if key not in data:
                return f"{where}{key} is missing"
    return None


def _wrong(where: str, value: Any, expected: str) -> str:
    shown = json.dumps(value, ensure_ascii=False, default=str)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    return f"{where} is {shown}, expected {expected}"
