"""The file store's run index: `status/STATUS/DAY/CREATED~RUN~WORKFLOW~KIND`, one empty file
per run in the directory of its status, so that `list` and `pending` read only the snapshots
of the runs they answer with, never every snapshot (`prune`, which must know every run's age,
still reads them all, but through the index).

A hint kept without an fsync of its own. A write that changes a run's status first makes the
entry in the new status's directory, then writes the snapshot, then removes the old entry: a
crash leaves at worst an extra entry, and a power cut may lose recent entry changes (only the
snapshot's directory is fsynced). So each entry is checked against its snapshot before its run
is answered with, and one that disagrees is corrected under the run's state lock; a query that
read every run the index knows also lists runs/ for what the index lacks. The name holds what
a query filters on without reading the snapshot: the creation time (newest first; DAY is its
first ten characters), the run id, the workflow and whether the run is a child run (KIND `c`)
or a top-level one (`t`). `status/complete` says the index covers every run (a state directory
this version made); without it (one an older wfrun made) the first query rebuilds the index
from the snapshots. The queries over it, and their caches, are in `_runqueries`.
"""
from __future__ import annotations

import hashlib
import itertools
import os
import re
from collections.abc import Iterable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

import wfrun.store._dirs as _dirs
import wfrun.store._fsops as _fsops
import wfrun.store._started as _started
from wfrun.errors import StateError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.model import RUN_STATUSES, Run
from wfrun.store.queries import RunSummary

INDEX = "status"  # the run index's directory in the state directory
COMPLETE = "complete"  # its marker: every run has an entry (else the next query rebuilds it)
COUNTS = "counts.json"  # day directory -> (inode, mtime, entries per kind and workflow)
SUMMARIES = "summaries"  # summaries/STATUS~DAY.json: runs' summaries by snapshot signature
TOP, CHILD = "t", "c"
_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._:+-")
_SAFE_NAME = re.compile(r"(?!\.)[A-Za-z0-9._:+-]*")  # kept as it is in an entry name
_UNKNOWN = ""  # the status of a run's snapshot is not known here: any other entry may be stale
_KEPT = 8192  # statuses of runs remembered per process (see _note_listed)
_ATTEMPTS = 8  # creations of an entry whose day directory a query removes each time in between
_REBUILD_WAIT_SECONDS = 0.2  # a rebuild waits this long for each busy run's state lock

Counts = dict[str, dict[str, int]]  # kind -> workflow (as in entry names) -> entries
Entry = tuple[str, str, str]  # status, day, name


def escape_part(text: str, most: int) -> str:
    """`text` as a part of a file name: safe characters kept, others as %XX (UTF-8), and a
    hash if that is longer than `most` characters."""
    if len(text) <= most and _SAFE_NAME.fullmatch(text):
        return text
    out = "".join(c if c in _SAFE else "".join(f"%{b:02X}" for b in c.encode("utf-8", "replace"))
                  for c in text)
    if out.startswith("."):
        out = "%2E" + out[1:]
    if len(out) > most:
        out = "#" + hashlib.sha256(text.encode("utf-8", "replace")).hexdigest()[:32]
    return out


def workflow_token(workflow: str) -> str:
    """How a workflow's name is written in entry names."""
    return escape_part(workflow, 100)


def day_of(created_at: str) -> str:
    """The day directory of a run created at `created_at` (`2026-11-22`)."""
    return escape_part(created_at[:10], 10) or "_"


def entry_of(run: Run | RunSummary) -> tuple[str, str]:
    """The day directory and the entry name of a run (the same for each of its statuses)."""
    kind = CHILD if run.parent is not None else TOP
    return (day_of(run.created_at),
            f"{escape_part(run.created_at, 40)}~{run.run_id}~{workflow_token(run.workflow)}~{kind}")


def parse_entry(name: str) -> list[str] | None:
    """`[created, run_id, workflow, kind]` of an entry name (as written), or None if it is none."""
    parts = name.split("~")
    if len(parts) != 4 or parts[3] not in (TOP, CHILD) or not RUN_ID_PATTERN.fullmatch(parts[1]):
        return None
    return parts


def tally(names: Iterable[str]) -> Counts:
    """Entries per kind and workflow among a day directory's names."""
    counts: Counts = {TOP: {}, CHILD: {}}
    for name in names:
        parts = parse_entry(name)
        if parts is not None:
            per = counts[parts[3]]
            per[parts[2]] = per.get(parts[2], 0) + 1
    return counts


def counted(counts: Counts, workflow: str | None, kinds: tuple[str, ...]) -> int:
    """How many of the tallied entries are of `workflow` (any if None) and `kinds`."""
    if workflow is None:
        return sum(sum(counts.get(kind, {}).values()) for kind in kinds)
    return sum(counts.get(kind, {}).get(workflow, 0) for kind in kinds)


class RunIndex:
    """The run-index part of the file store (a mixin of FileStore): kept up to date by every
    snapshot write, made whole from the snapshots, checked by `doctor`."""

    _listed: dict[str, str]  # run -> its status (`_read_run`) as this process last read or wrote it
    _stat: dict[str, Any]  # run -> signatures of what this process last read (FileStore's)

    if TYPE_CHECKING:  # provided by FileStore
        def _path(self, *parts: str) -> str: ...
        def _exists_dir(self) -> bool: ...
        def _ensure(self) -> None: ...
        def _snapshot_stems(self, prefix: str = "") -> list[str]: ...
        def stray_snapshot(self, stem: str) -> str: ...
        def load(self, run_id: str) -> Run: ...

    # -- kept up to date by every write -------------------------------------------------------

    def _note_listed(self, run_id: str, status: str) -> None:
        """Remember the status of a run's snapshot just read or written (bounded: a forgotten
        run's next status change removes its old entry from every other status)."""
        listed = self._listed
        if len(listed) >= _KEPT and run_id not in listed:
            for old in list(itertools.islice(listed, _KEPT // 2)):
                listed.pop(old, None)  # (serve's threads share the store)
        listed[run_id] = status

    def _list_before_write(self, run: Run) -> str | None:
        """Before the run's snapshot is written: its entry in the directory of its status, if
        the status changes. Returns the status whose entry goes once the snapshot is written
        (None: none). OSError if the entry cannot be made (the snapshot is not written)."""
        old = None if run.revision == 0 else self._listed.get(run.run_id, _UNKNOWN)
        if old == run.status:
            return None
        day, name = entry_of(run)
        self._touch_entry((run.status, day, name))
        return old

    def _list_after_write(self, run: Run, old: str | None) -> None:
        """Once the run's snapshot is written: the entry of its old status goes (of every other
        status if the old one is not known here)."""
        self._note_listed(run.run_id, run.status)
        if old is not None:
            self._drop_entries(run, [old] if old else
                               [s for s in RUN_STATUSES if s != run.status])

    def _unlist(self, run: Run) -> None:
        """Once a deleted run's snapshot is gone: its entries go."""
        self._drop_entries(run, RUN_STATUSES)
        self._listed.pop(run.run_id, None)

    def _drop_entries(self, run: Run, statuses: Iterable[str]) -> None:
        day, name = entry_of(run)
        for status in statuses:
            with suppress(OSError):
                os.unlink(self._path(INDEX, status, day, name))

    def _touch_entry(self, entry: Entry) -> None:
        """Create an entry (and its directories), 0600, if it is missing."""
        directory = self._path(INDEX, entry[0], entry[1])
        path = f"{directory}/{entry[2]}"
        for attempt in range(_ATTEMPTS):
            try:
                _dirs.link_blank(directory, path)
                return
            except FileExistsError:
                return
            except FileNotFoundError:
                if attempt == _ATTEMPTS - 1:
                    raise
                _dirs.make_dir(directory)  # (or another process made it meanwhile)

    def _private_run_index(self) -> None:
        """Make the index private again if others may read it (a backup restored as 0755
        directories and 0644 files): each directory 0700, each file 0600."""
        top = self._path(INDEX)
        try:
            if not os.stat(top).st_mode & 0o077:
                return
            for directory, _, names in os.walk(top):
                os.chmod(directory, 0o700)
                for name in names:
                    os.chmod(f"{directory}/{name}", 0o600)
        except FileNotFoundError:
            return

    def _mark_run_index_complete(self) -> None:
        """Say that every run has an entry (a new state directory, or a rebuilt index)."""
        _dirs.make_dir(self._path(INDEX))
        with suppress(FileExistsError):
            os.close(os.open(self._path(INDEX, COMPLETE),
                             os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))

    # -- the index made whole -------------------------------------------------------------------

    def _run_index_ready(self) -> bool:
        """False if there is no state directory; rebuilds a missing index first."""
        if not self._exists_dir():
            return False
        if not os.path.exists(self._path(INDEX, COMPLETE)):
            self._rebuild_run_index()
        return True

    def _rebuild_run_index(self) -> None:
        """Give every run its entry and correct every entry, from the snapshots, then mark the
        index complete. Safe while other processes write runs or rebuild too: each run is
        corrected under its state lock (a run still busy then gets its entry, and nothing is
        removed). A state directory with no runs/ gets nothing written."""
        if not os.path.isdir(self._path("runs")):
            return
        present = self._entries()
        for stem in self._snapshot_stems():
            if RUN_ID_PATTERN.fullmatch(stem):
                self._fix_entries(stem, present.pop(stem, []), wait=_REBUILD_WAIT_SECONDS)
        for run_id, entries in present.items():  # entries naming no snapshot
            self._fix_entries(run_id, entries)
        with suppress(OSError):  # (a read-only state directory: rebuilt by each query then)
            self._mark_run_index_complete()

    def _entries(self) -> dict[str, list[Entry]]:
        """Every entry of the index, by run."""
        present: dict[str, list[Entry]] = {}
        for status in RUN_STATUSES:
            for day in listdir_visible(self._path(INDEX, status)):
                for name in listdir_visible(self._path(INDEX, status, day)):
                    parts = parse_entry(name)
                    if parts is not None:
                        present.setdefault(parts[1], []).append((status, day, name))
        return present

    def _fix_entries(self, run_id: str, entries: list[Entry], wait: float = 0.0) -> None:
        """Under the run's state lock (waiting at most `wait` seconds): the entry its snapshot
        asks for exists, and `entries` that are not that one are removed (all of them if the
        run is gone). An unreadable snapshot's entries are left (the query that meets them
        reports it). A run still busy is left to its writer, which keeps its entry; with
        `wait` (a rebuild), its entry is made all the same, never removed."""
        from wfrun.store._statelock import LockTimeout, StateLock

        lock_path = self._path("locks", run_id + ".lock")
        lock = StateLock(lock_path)
        try:
            lock.acquire(timeout=wait)
        except (LockTimeout, OSError):
            if wait:
                with suppress(OSError, StateError):
                    busy = _read_run(self._path("runs", run_id + ".json"), run_id)
                    self._touch_entry((busy.status, *entry_of(busy)))
            return
        try:
            path = self._path("runs", run_id + ".json")
            try:
                run: Run | None = _read_run(path, run_id)
            except FileNotFoundError:
                run = None
            except (OSError, StateError):
                return
            wanted = None
            if run is not None:
                wanted = (run.status, *entry_of(run))
                self._touch_entry(wanted)
                self._note_listed(run_id, run.status)
            for entry in entries:
                if entry != wanted:
                    with suppress(FileNotFoundError):
                        os.unlink(self._path(INDEX, *entry))
            if run is None:
                with suppress(FileNotFoundError):
                    os.unlink(lock_path)  # made just now for a run that is not there
        except OSError:
            return  # a hint: the next query tries again
        finally:
            lock.release()

    def _check_run_index(self) -> list[dict[str, str]]:
        """`wfrun doctor`'s findings about the run index: runs missing from it or listed under
        another status, entries naming no run, names that are no entry (changes nothing)."""
        if not os.path.exists(self._path(INDEX, COMPLETE)):
            return []  # (none yet: the next list or pending builds it)
        problems = []
        how = ("`wfrun list` and `wfrun pending` correct the entries they come across; to "
               f"rebuild the whole index, delete {self._path(INDEX, COMPLETE)}")
        present = self._entries()
        for stem in self._snapshot_stems():
            if not RUN_ID_PATTERN.fullmatch(stem):
                continue
            try:
                run = _read_run(self._path("runs", stem + ".json"), stem)
            except (OSError, StateError):
                present.pop(stem, None)  # (the snapshot's own problem is reported)
                continue
            wanted = (run.status, *entry_of(run))
            entries = present.pop(stem, [])
            if wanted not in entries:  # (the entry's path names the run: said once)
                missing = self._path(INDEX, *wanted)
                problems.append({"path": missing, "kind": "index", "reason": (
                    f"run-index entry {missing} is missing, so list and pending may not show "
                    f"that {run.status} run; {how}")})
            problems.extend(self._stray_entry(e, f"that run is {run.status}", how)
                            for e in entries if e != wanted)
        for entries in present.values():  # (a run removed by hand)
            problems.extend(self._stray_entry(e, "there is no such run", how)
                            for e in entries)
        for status in os.listdir(self._path(INDEX)) if os.path.isdir(self._path(INDEX)) else ():
            if status not in RUN_STATUSES and status not in (COMPLETE, COUNTS, SUMMARIES) \
                    and ".tmp-" not in status:
                problems.append({"path": self._path(INDEX, status), "kind": "index", "reason": (
                    "not part of the run index (a directory per run status); wfrun ignores "
                    "it: move it out of the state directory")})
        return problems

    def _stray_entry(self, entry: Entry, why: str, how: str) -> dict[str, str]:
        """An entry no query takes (a write interrupted between the entries of two statuses, a
        run removed by hand): harmless, a note; a run it leaves unlisted is a problem of its
        own (`missing`)."""
        path = self._path(INDEX, *entry)
        return {"path": path, "kind": "index", "severity": "note", "reason": (
            f"run-index entry {path} is under {entry[0]}, but {why}; queries skip it; {how}")}


BLANK = _dirs.BLANK  # the empty file an index directory's entries are hard links to


def listdir_visible(path: str) -> list[str]:
    """The names in a directory but its hidden ones (none if it is missing; StateError if it
    cannot be read)."""
    return [name for name in _dirs.names_in(path) if not name.startswith(".")]


def _read_run(path: str, run_id: str) -> Run:
    """The run in a snapshot file, verified (no cache), and with its "step started" record if
    its claim file holds a valid one (`_started`): what `load` returns, whose status the run
    index files it under (a run a tick is executing, or left by a killed tick, is running
    though its snapshot still says waiting)."""
    from wfrun.store._snapshot import parse_snapshot

    _, raw = _fsops.read_whole(path)
    run = parse_snapshot(path, raw, run_id=run_id)[0]
    claim_file = os.path.join(os.path.dirname(os.path.dirname(path)), "locks", run_id + ".exec")
    return _started.read(claim_file, run.revision, run_id=run_id)[0] or run
