"""The file store's schedule states (`Store.schedule_state`, `Store.save_schedule_state`).

Layout: `.wfstate/schedules/WORKFLOW.json` (0600; the directory 0700), one per scheduled
workflow, written whole by `_fsops.durable_write` (temporary file, fsync, rename, directory
fsync) while the save holds `schedules/WORKFLOW.lock`, so the revision check and the write are
one step for every process of the machine. The file is readable JSON:
`{"checksum", "revision", "schema_version", "state", "workflow"}`, where `checksum` is the
sha256 of the other four as compact JSON with sorted keys: a hand edit or a damaged file is
reported (StateError), never used.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Any

import wfrun.store._dirs as _dirs
import wfrun.store._fsops as _fsops
from wfrun.errors import ConflictError, StateError, UsageError
from wfrun.store._filestore_parts import FileStoreParts
from wfrun.store._schedule_state import check_workflow_name, state_json
from wfrun.store._statelock import LockTimeout, StateLock

SCHEMA_VERSION = 1
LOCK_TIMEOUT_SECONDS = 30.0
_LONGEST_STEM = 120  # longer workflow names are shortened, with a hash of the whole name


def _stem(workflow: str) -> str:
    """The file name (without extension) of a workflow's schedule state."""
    check_workflow_name(workflow)
    if len(workflow) <= _LONGEST_STEM:
        return workflow
    digest = hashlib.sha256(workflow.encode()).hexdigest()[:16]
    return f"{workflow[:_LONGEST_STEM - 17]}-{digest}"


def _checksum(document: dict[str, Any]) -> str:
    body = {key: document.get(key) for key in ("revision", "schema_version", "state", "workflow")}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def path(store: FileStoreParts, workflow: str) -> str:
    """Where the schedule state of `workflow` is kept."""
    return store._path("schedules", _stem(workflow) + ".json")


def read(store: FileStoreParts, workflow: str) -> tuple[dict[str, Any] | None, int]:
    """`Store.schedule_state` for the file store."""
    where = path(store, workflow)
    if not store._exists_dir():  # (never reads from a state directory others can write to)
        return None, 0
    try:
        with open(where, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        return None, 0
    except OSError as exc:
        raise StateError(f"cannot read schedule state {where}: {exc.strerror}") from exc
    try:
        document = json.loads(raw)
        ok = (isinstance(document, dict) and document.get("checksum") == _checksum(document)
              and document.get("workflow") == workflow
              and isinstance(document.get("state"), dict)
              and isinstance(document.get("revision"), int) and document["revision"] >= 1)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeError included
        ok = False
    if not ok:
        raise StateError(
            f"schedule state {where} is damaged (it does not verify); move it away and the "
            f"schedule of workflow '{workflow}' starts afresh from the next tick"
        )
    return document["state"], document["revision"]


def save(store: FileStoreParts, workflow: str, state: dict[str, Any], expected_revision: int) -> int:
    """`Store.save_schedule_state` for the file store."""
    where = path(store, workflow)
    document = {"revision": expected_revision + 1, "schema_version": SCHEMA_VERSION,
                "state": state, "workflow": workflow}
    document["checksum"] = _checksum(document)
    data = (state_json(workflow, document, indent=1, sort_keys=True) + "\n").encode()
    store._ensure()
    directory = os.path.dirname(where)
    try:
        if not _dirs.make_dir(directory) and os.stat(directory).st_mode & 0o077:
            os.chmod(directory, 0o700)  # restored from a backup, or changed by hand
    except OSError as exc:
        raise StateError(f"cannot create {directory}: {exc.strerror}") from exc
    lock = StateLock(where[: -len(".json")] + ".lock", f"the schedule lock of workflow '{workflow}'")
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
    except LockTimeout:
        raise ConflictError(
            f"the schedule of workflow '{workflow}' is busy: its lock was held for over "
            f"{LOCK_TIMEOUT_SECONDS:.0f}s; try again") from None
    try:
        _, stored = read(store, workflow)
        if stored != expected_revision:
            raise ConflictError(
                f"the schedule state of workflow '{workflow}' changed meanwhile (revision "
                f"{stored}, expected {expected_revision}); try again")
        try:
            _fsops.durable_write(where, data)
        except OSError as exc:
            raise StateError(f"cannot write schedule state {where}: {exc.strerror or exc}; "
                             "the previous state is intact") from exc
    finally:
        lock.release()
    return expected_revision + 1


def workflows(store: FileStoreParts) -> list[str]:
    """`Store.schedule_workflows` for the file store: the workflow each state file names (a
    long name's file is named by a shortened form), sorted."""
    directory = store._path("schedules")
    if not store._exists_dir():
        return []
    try:
        names = sorted(n for n in os.listdir(directory)
                       if n.endswith(".json") and not n.startswith("."))
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot list schedule states in {directory}: {exc.strerror}") from exc
    found = []
    for name in names:
        where = os.path.join(directory, name)
        try:
            with open(where, "rb") as fh:
                document = json.loads(fh.read())
            workflow = document["workflow"]
            if not isinstance(workflow, str) or path(store, workflow) != where:
                raise ValueError("it names another workflow")
        except (OSError, ValueError, KeyError, TypeError, RecursionError, UsageError):
            raise StateError(f"schedule state {where} is damaged (it names no workflow whose "
                             "state it could be); move it away and that schedule starts afresh "
                             "from the next tick") from None
        found.append(workflow)
    return sorted(found)
