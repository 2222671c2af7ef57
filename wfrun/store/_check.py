"""`wfrun doctor` for the file store: examine every file of the state directory, change none."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from wfrun.errors import NotFoundError, StateError, UsageError
from wfrun.store._snapshot import lines_problem

if TYPE_CHECKING:
    from wfrun.store.file import FileStore


def check(store: FileStore) -> tuple[int, list[dict[str, str]]]:
    """`Store.check` for the file store: snapshots, histories, logs, leftovers and the due
    index."""
    runs, problems = 0, []
    for sub in ("runs", "keys"):
        try:
            names = sorted(os.listdir(store._path(sub)))
        except FileNotFoundError:
            continue
        for name in names:
            path = store._path(sub, name)
            if ".tmp-" in name:
                problems.append({"path": path, "kind": "temp", "reason": (
                    "a temporary file left by an interrupted write; it is never read as "
                    "state and can be deleted")})
            elif name.startswith(".") and name.endswith((".spare", ".prev")):
                if _has_other_names(path):  # a spare is normal; a second name of a snapshot not
                    problems.append({"path": path, "kind": "temp", "reason": (
                        "a second name of a snapshot, left by an interrupted write; it is "
                        "never read as state, and the run's next write tidies it")})
            elif sub == "runs" and name.endswith((".history.jsonl", ".log.jsonl")):
                what = "history" if name.endswith(".history.jsonl") else "log"
                reason = lines_problem(path, what)
                if reason:
                    problems.append({"path": path, "kind": what, "reason": reason})
            elif sub == "runs" and name.endswith(".json"):
                runs += 1
                problems.extend(_check_snapshot(store, name[: -len(".json")], path))
    return runs, problems

def _has_other_names(path: str) -> bool:
    """True if the file at `path` has names besides `path` (False if it is gone meanwhile)."""
    try:
        return os.lstat(path).st_nlink > 1
    except FileNotFoundError:
        return False


def _check_snapshot(store: FileStore, run_id: str, path: str) -> list[dict[str, str]]:
    """A snapshot's problem: it cannot be read or verified, or tick would never visit it."""
    try:
        run = store.load(run_id)
    except (StateError, UsageError) as exc:
        return [{"path": path, "kind": "snapshot", "reason": exc.message}]
    except NotFoundError:
        return []  # deleted meanwhile
    entry = store._index.get(run_id)
    if run.next_due() and not (entry and os.path.exists(store._path("due", entry[:11], entry))):
        return [{"path": path, "kind": "index", "reason": (
            f"run {run_id} is {run.status} but its due-index entry {entry or '(none)'} is "
            "missing, so tick will not visit it")}]
    return []
