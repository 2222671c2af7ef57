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

import os
from collections.abc import Callable

from wfrun.errors import StateError
from wfrun.model import Run
from wfrun.store import _fsops
from wfrun.store._snapshot import parse_snapshot
from wfrun.store.abc import ExecutionClaim

Signature = tuple[int, int, int]  # inode, mtime (ns), size


class FlockClaim(ExecutionClaim):
    """An execution claim held as a kernel flock: it dies with the process."""

    def __init__(self, fd: int, run_id: str, on_release: Callable[[str, int], None]) -> None:
        self._fd: int | None = fd
        self._run_id, self._on_release = run_id, on_release

    def release(self) -> None:
        if self._fd is not None:
            self._on_release(self._run_id, self._fd)
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None


def signature(path: str) -> Signature | None:
    """The claim file's stat signature, or None if it is missing or empty."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return (st.st_ino, st.st_mtime_ns, st.st_size) if st.st_size else None


def read(path: str, base_revision: int) -> tuple[Run | None, Signature | None, bytes]:
    """The run recorded as started on top of snapshot revision `base_revision` (None if there
    is no such valid record), the claim file's signature (None if missing or empty) and bytes."""
    try:
        with open(path, "rb") as fh:
            st = os.fstat(fh.fileno())
            raw = fh.read()
    except OSError:
        return None, None, b""  # missing or unreadable: the snapshot is the state
    if not raw:
        return None, None, raw
    sig = (st.st_ino, st.st_mtime_ns, st.st_size)
    try:
        run, _ = parse_snapshot(path, raw)
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
