"""`wfrun doctor` for the file store: examine every file of the state directory, change none."""

from __future__ import annotations

import os
import stat

import wfrun.store._dirs as _dirs
from wfrun.errors import NotFoundError, StateError, UsageError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.store._dueindex import BUCKET_NAME, entries_and_blanks
from wfrun.store._filestore_parts import FileStoreParts
from wfrun.store._keyfile import KEY_BYTES, TEMP_NAME, leftover_note, short_key_problem
from wfrun.store._snapshot import lines_problem


def check(store: FileStoreParts) -> tuple[int, list[dict[str, str]]]:
    """`Store.check` for the file store: snapshots, histories, logs, leftovers and the due
    index. Leftovers of interrupted writes (temporary files, a second name of a snapshot) and
    histories or logs of no snapshot are notes, not problems: they are never read as state."""
    runs, problems = 0, []
    snapshots: set[str] = set()  # the stems of runs/*.json
    records: list[tuple[str, str, str]] = []  # (run id, history or log, path) in runs/
    for sub in ("runs", "keys"):
        for name in sorted(_dirs.names_in(store._path(sub))):
            path = store._path(sub, name)
            if sub == "keys" and TEMP_NAME.fullmatch(name):
                problems.append(_note(path, leftover_note(path)))
            elif ".tmp-" in name:
                problems.append(_note(path, (
                    f"{path} is a temporary file left by an interrupted write; it is never read "
                    f"as state and is harmless: remove it with 'rm {path}'")))
            elif name.startswith(".") and name.endswith((".spare", ".prev")):
                if _has_other_names(path):  # a spare is normal; a second name of a snapshot not
                    problems.append(_note(path, (
                        f"{path} is a second name of a snapshot, left by an interrupted write; "
                        "it is never read as state and is harmless: the run's next write "
                        f"tidies it, or remove it with 'rm {path}'")))
            elif sub == "keys" and name == "url.key":
                problems.extend(_check_key(path))
            elif sub == "runs" and name.endswith((".history.jsonl", ".log.jsonl")):
                what = "history" if name.endswith(".history.jsonl") else "log"
                records.append((name[: -len(f".{what}.jsonl")], what, path))
                reason = lines_problem(path, what)
                if reason:
                    problems.append({"path": path, "kind": what, "reason": reason})
            elif sub == "runs" and name.endswith(".json"):
                stem = name[: -len(".json")]
                snapshots.add(stem)
                if not RUN_ID_PATTERN.fullmatch(stem):
                    problems.append({"path": path, "kind": "snapshot",
                                     "reason": store.stray_snapshot(stem)})
                    continue
                runs += 1
                problems.extend(_check_snapshot(store, stem, path))
    problems.extend(_orphans(store, records, snapshots))
    problems.extend(_check_due(store))
    problems.extend(store._check_run_index())
    problems.extend(_check_modes(store))
    return runs, problems


def _note(path: str, reason: str) -> dict[str, str]:
    """A leftover `doctor` reports as harmless (a note: exit 0 if nothing else is found)."""
    return {"path": path, "kind": "temp", "severity": "note", "reason": reason}


def _orphans(store: FileStoreParts, records: list[tuple[str, str, str]],
             snapshots: set[str]) -> list[dict[str, str]]:
    """Histories and logs whose run has no snapshot (moved or deleted by hand, or a `state copy`
    interrupted before it wrote the snapshot): no command reads them, so they are notes. The
    run ids listed are compared, no file is read; each one found is looked at again, as the
    listing may have missed a snapshot made meanwhile (a run's snapshot comes before its
    history)."""
    found = []
    for run_id, what, path in records:
        snapshot = store._path("runs", run_id + ".json")
        if run_id in snapshots or os.path.exists(snapshot) or not os.path.exists(path):
            continue
        found.append({"path": path, "kind": "orphan", "severity": "note", "reason": (
            f"{path} is the {what} of run {run_id}, whose snapshot {snapshot} is missing "
            "(moved or deleted by hand, or a 'wfrun state copy' interrupted before it): no "
            f"command reads it, and no run can be started again as {run_id} until it is gone; "
            f"put the snapshot back, or remove it with 'rm {path}'")})
    return found


def _check_modes(store: FileStoreParts) -> list[dict[str, str]]:
    """Directories and files that others may read or write: wfrun makes directories 0700 and
    files 0600 whatever the umask, so such a mode came from a restore or a hand (the run's next
    write makes its snapshot and history 0600 again; `chmod` the others). Empty files
    (due-index entries, state locks) hold nothing to read and are left out."""
    problems = []
    for sub in ("runs", "keys", "locks", "due", "cache"):
        directory = store._path(sub)
        try:
            entries = list(os.scandir(directory))
            mode = os.stat(directory).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        problems.extend(_mode_problem(directory, mode, 0o700))
        for entry in sorted(entries, key=lambda e: e.name):
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue
            if sub == "due":
                if stat.S_ISDIR(st.st_mode):  # an hour bucket (its entries are empty files)
                    problems.extend(_mode_problem(entry.path, st.st_mode, 0o700))
            elif stat.S_ISREG(st.st_mode) and not entry.name.endswith(".lock"):
                problems.extend(_mode_problem(entry.path, st.st_mode, 0o600))
    return problems


def _mode_problem(path: str, mode: int, wanted: int) -> list[dict[str, str]]:
    """A `mode` problem if `mode` gives group or others any access, else nothing."""
    if not mode & 0o077:
        return []
    who = "group or others can write it" if mode & 0o022 else "group or others can read it"
    return [{"path": path, "kind": "mode", "reason": (
        f"mode {stat.S_IMODE(mode):o}: {who} (restored from a backup or changed by hand; wfrun "
        f"keeps it {wanted:o}): run 'chmod {wanted:o} {path}'")}]


def _check_due(store: FileStoreParts) -> list[dict[str, str]]:
    """Names in the due index that tick cannot use: what is not an hour bucket (tick ignores
    it), and entries naming no valid run id (tick drops them) or in another hour's bucket."""
    problems = []
    for bucket in sorted(_dirs.names_in(store._path("due"))):
        path = store._path("due", bucket)
        if not BUCKET_NAME.fullmatch(bucket) or not os.path.isdir(path):
            problems.append({"path": path, "kind": "index", "reason": (
                "not an hour bucket of the due index (a directory YYYYMMDDTHH); tick ignores "
                "it: move it out of the state directory")})
            continue
        try:
            names = entries_and_blanks(path)[0]
        except FileNotFoundError:
            continue  # removed by a tick meanwhile
        for name in names:
            time_part, _, run_id = name.partition("~")
            entry = store._path("due", bucket, name)
            if not RUN_ID_PATTERN.fullmatch(run_id):
                problems.append({"path": entry, "kind": "index", "reason": (
                    "a due-index entry that does not name a valid run id; a tick removes it and "
                    f"reports it by the end of the hour of its bucket ({bucket}) at the latest, "
                    f"or remove it with 'rm {entry}'")})
            elif not time_part.startswith(bucket):
                problems.append({"path": entry, "kind": "index", "reason": (
                    f"due-index entry {entry} is in the bucket of another hour; tick visits "
                    "its run but never removes the entry: delete it (wfrun doctor reports the "
                    "run if it misses its entry)")})
    return problems


def _check_key(path: str) -> list[dict[str, str]]:
    """The URL signing key's problem: too short to be used (see _keyfile)."""
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return []
    if size >= KEY_BYTES:
        return []
    return [{"path": path, "kind": "key", "reason": short_key_problem(path, size)}]


def _has_other_names(path: str) -> bool:
    """True if the file at `path` has names besides `path` (False if it is gone meanwhile)."""
    try:
        return os.lstat(path).st_nlink > 1
    except FileNotFoundError:
        return False


def _check_snapshot(store: FileStoreParts, run_id: str, path: str) -> list[dict[str, str]]:
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
            f"snapshot {path} is of a {run.status} run whose due-index entry "
            f"{entry or '(none)'} is missing, so tick will not visit it")}]
    return []
