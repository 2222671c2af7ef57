"""The execution claim (a flock on `locks/RUN.exec`) and the "step started" record kept in that
file: a newer state, written without fsync, while a step executes.

A tick that fires a timer holds the run's execution claim (a flock on `locks/RUN.exec`) while
the step executes; it writes "step running" into that already open file (surviving the death of
the process, not a power cut) instead of a second durable write, and the step's outcome then
replaces the snapshot in one durable write. The record is only believed while its revision is
the snapshot's plus one and its checksum verifies; anything else (torn by a kill mid-write,
before the step started, or by a power cut; or superseded) is ignored and the snapshot is the
state. See docs/architecture.md, "One durable write per step".
"""

from __future__ import annotations

import errno
import fcntl
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import wfrun.store._fsops as _fsops
import wfrun.store._lockfiles as _lockfiles  # (imported before: an EMFILE import would fail)
from wfrun.errors import StateError
from wfrun.ids import check_run_id
from wfrun.model import RUNNING, SCHEMA_VERSION, Run
from wfrun.store._snapshot import head_revision, parse_snapshot, render_snapshot
from wfrun.store.abc import ExecutionClaim, Store

Signature = tuple[int, int, int]  # inode, mtime (ns), size
# A snapshot's inode, mtime, size and the revision at its head: the file store reuses inodes
# (durable_replace) and mtimes are coarse, so only the revision tells two versions apart for sure
SnapshotSig = tuple[int, int, int, int]
Known = tuple[SnapshotSig, int, Signature | None]  # snapshot signature, revision, record's
Mine = tuple[str, SnapshotSig, Signature | None, bytes]  # run, snapshot and record sig., bytes


class RecordingStore(Store):
    """The file store's part that takes execution claims and writes and recognises "step
    started" records."""

    _stat: dict[str, Known]  # run -> what this process last saw of its files
    _claims: dict[str, int]  # run -> descriptor of the claim this process holds
    _index: dict[str, str | None]
    _mine: Mine | None  # the last run state read or written here

    def _path(self, *parts: str) -> str:
        raise NotImplementedError

    def _ensure(self) -> None:
        raise NotImplementedError

    def _snapshot_path(self, run_id: str) -> str:
        raise NotImplementedError

    def _check_revision(self, run: Run, path: str) -> None:
        raise NotImplementedError

    def _write(self, run: Run, path: str) -> None:
        raise NotImplementedError

    def append_history(self, run_id: str, events: Sequence[dict[str, Any]]) -> None:
        raise NotImplementedError

    if TYPE_CHECKING:  # (_filebatch.BatchPart's)
        def _claim_taken(self, run_id: str) -> None: ...

        def _claim_given_up(self, run_id: str) -> None: ...

        # (_runindex.RunIndex's)
        def _list_before_write(self, run: Run) -> str | None: ...

        def _list_after_write(self, run: Run, old: str | None) -> None: ...

    def _claim_fd(self, run_id: str) -> int | None:
        self._ensure()
        path = self._path("locks", check_run_id(run_id) + ".exec")
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise _lockfiles.open_error(path, exc, f"the execution claim of run {run_id}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    def _private(self, fd: int) -> None:
        """Make a claim file this process now holds 0600 (it keeps "step started" records) if
        a restore from a backup left it readable by others."""
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)

    def claim(self, run_id: str) -> ExecutionClaim | None:
        fd = self._claim_fd(run_id)
        if fd is None:
            return None
        self._private(fd)
        self._claimed(run_id, fd)  # the "step started" record is written through it
        # the version its holder is about to load: a directory fsync from now on makes the
        # rename that installed it durable, so its spare may be written (see _fsops)
        _fsops.observe(self._snapshot_path(run_id))
        return FlockClaim(fd, run_id, self._released, _next_token())

    def is_claimed(self, run_id: str) -> bool:
        fd = self._claim_fd(run_id)
        if fd is None:
            return True
        os.close(fd)
        return False

    def _save_started(self, run: Run, events: Sequence[dict[str, Any]]) -> None:
        """`save` with `Durability.STEP_START`: write the state into the claim file this
        process holds (see the module docstring), then append the events to the run's history
        (which, too, outlives this process)."""
        path = self._snapshot_path(run.run_id)
        self._check_revision(run, path)
        due, index = run.next_due(), self._index.get(run.run_id)
        fd, known = self._claims.get(run.run_id), self._stat[run.run_id]
        # a record must sit on a durable snapshot: on top of another one, write durably
        if fd is None or known[2] is not None or run.status != RUNNING \
                or not (index and due and index <= index_name(due, run.run_id)):
            self._write(run, path)  # no claim, or the due index must change: a durable write
            self.append_history(run.run_id, events)
            return
        run_data = run.to_dict()
        run_data["revision"] = run.revision + 1
        try:
            data = render_snapshot(SCHEMA_VERSION, index, run_data)
            listed = self._list_before_write(run)  # listed as running from now on
            sig = write(fd, data)
        except OSError as exc:
            raise StateError(
                f"cannot write snapshot {path} (step started): {exc.strerror or exc}; the "
                "previous state is intact"
                + ("; free some disk space" if exc.errno == errno.ENOSPC else "")) from exc
        run.revision += 1
        self._list_after_write(run, listed)
        self._stat[run.run_id] = (known[0], run.revision, sig)
        self._mine = (run.run_id, known[0], sig, data)
        self.append_history(run.run_id, events)

    def _unchanged(self, run_id: str, path: str) -> bool:
        """True if the run's snapshot and claim file are as this process last saw them."""
        known = self._stat.get(run_id)
        return known is not None and self._same(run_id, path, known[0], known[2])

    def _same(self, run_id: str, path: str, base: SnapshotSig, record: Signature | None) -> bool:
        """True if the snapshot and claim file have the signatures given (a claim this process
        holds changes only through it: `claim` forgets what was seen of it before)."""
        if base != snapshot_signature(path):
            return False
        return run_id in self._claims or record == signature(self._path("locks", run_id + ".exec"))

    def _claimed(self, run_id: str, fd: int) -> None:
        """Called as this process takes a run's claim: what it saw of the claim file before may
        have been replaced by a process that held the claim meanwhile."""
        self._claims[run_id] = fd
        self._claim_taken(run_id)
        self._stat.pop(run_id, None)
        if self._mine is not None and self._mine[0] == run_id:
            self._mine = None

    def _released(self, run_id: str, fd: int) -> None:
        """Called as a claim is released, before its flock is dropped."""
        if self._claims.get(run_id) == fd:
            del self._claims[run_id]
            self._claim_given_up(run_id)  # what its holder appended is owed now
        known = self._stat.get(run_id)
        if known and known[2] is not None:  # a record stays: forget it, another process may
            self._stat.pop(run_id)          # replace it (in place: same inode) once it claims
            if self._mine is not None and self._mine[0] == run_id:
                self._mine = None


def index_name(due: str, run_id: str) -> str:
    """`2026-11-22T09:00:00.000Z` -> `20261122T090000.000Z~RUN` (sorts by time)."""
    return due.replace("-", "").replace(":", "") + "~" + run_id


class FlockClaim(ExecutionClaim):
    """An execution claim held as a kernel flock: it dies with the process."""

    def __init__(self, fd: int, run_id: str, on_release: Callable[[str, int], None],
                 token: int = 0) -> None:
        self._fd: int | None = fd
        self._run_id, self._on_release, self._token = run_id, on_release, token

    @property
    def token(self) -> int:
        """The fencing token (see `_next_token`). A flock cannot be lost while its holder
        lives, so the file store never refuses a save for it; it is there for the contract."""
        return self._token

    @property
    def run_id(self) -> str:
        """The run this claim is on."""
        return self._run_id

    def release(self) -> None:
        if self._fd is not None:
            self._on_release(self._run_id, self._fd)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


_last_token = 0


def _next_token() -> int:
    """A fencing token: the microseconds since the epoch, and more than the last one this
    process issued. Claims of a run are serialised by its flock, so its tokens grow as the
    clock does (a clock stepped back could repeat a smaller one: the file store never refuses a
    save for its token, because a flock cannot be lost while its holder lives). Nothing is
    written: a claim that ends in a refused resume changes no file."""
    global _last_token
    _last_token = max(_last_token + 1, time.time_ns() // 1000)
    return _last_token


def snapshot_signature(path: str) -> SnapshotSig | None:
    """A snapshot's inode, mtime, size and head revision (None if it cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        st = os.fstat(fd)
        head = os.pread(fd, 100, 0)
    finally:
        os.close(fd)
    return (st.st_ino, st.st_mtime_ns, st.st_size, head_revision(head))


def signature(path: str) -> Signature | None:
    """The claim file's stat signature, or None if it is missing or empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size) if st.st_size else None


def read(path: str, base_revision: int, fd: int | None = None,
         run_id: str | None = None) -> tuple[Run | None, Signature | None, bytes]:
    """The run (`run_id`'s, if given) recorded as started on top of snapshot revision
    `base_revision` (None if there is no such valid record), the claim file's signature (None
    if missing or empty) and bytes (read through `fd` if this process holds the claim)."""
    try:
        if fd is None:
            st, raw = _fsops.read_whole(path)
        else:
            st = os.fstat(fd)
            raw = os.pread(fd, st.st_size, 0) if st.st_size else b""
    except OSError:
        return None, None, b""  # missing or unreadable: the snapshot is the state
    if not raw:
        return None, None, raw
    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
    try:
        run, _ = parse_snapshot(path, raw, run_id=run_id)
    except StateError:
        return None, sig, raw  # torn: killed mid-write (its step never started) or a power cut
    return (run if run.revision == base_revision + 1 else None), sig, raw


def write(fd: int, data: bytes) -> Signature:
    """Record `data` in the open claim file (no fsync: it only has to outlive this process)."""
    _fsops.volatile_write(fd, data)
    st = os.fstat(fd)
    return (st.st_ino, st.st_mtime_ns, st.st_size)


def clear(fd: int) -> None:
    """Empty the claim file once a durable write superseded its record (no fsync needed: a
    record that reappears after a power cut has an older revision and is ignored)."""
    os.ftruncate(fd, 0)
