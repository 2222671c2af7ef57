"""The per-run state lock: filelock's lock on `locks/RUN.lock`, taken on a descriptor of our own.

SPEC §6 names filelock for this lock. Its `FileLock` object costs ~0.15-0.3 ms an acquire and
release and ~0.1 ms to build (it resolves the path, checks for forks and keeps thread-local
registries each time): about 0.35 ms of a step's 0.8 ms of CPU. filelock's descriptor API
(`lock_descriptor` / `unlock_descriptor`, filelock >= 3.30) takes the very same lock, the
exclusive flock `FileLock` takes on that file, so the two contend with each other, for ~10 µs.

Semantics, as the store needs them: reentrant within a thread; another thread or process waits
(each holder locks a descriptor of its own, and flocks on different open files of one inode
exclude each other, within one process too); the lock file is kept, created 0600; a holder's
death releases the lock.
"""

from __future__ import annotations

import os
import threading
import time
from types import ModuleType

import wfrun.store._lockfiles as _lockfiles  # (imported before: an EMFILE import would fail)

FIRST_POLL_SECONDS = 0.001  # a state change holds the lock ~1 ms: look again soon...
MAX_POLL_SECONDS = 0.05  # ...then back off, as FileLock's own poll interval


_module: ModuleType | None = None


def _filelock() -> ModuleType:
    """filelock, imported on first use (a command that takes no lock never loads it) and then
    kept: an import statement costs a lookup through the import system at every lock."""
    global _module
    if _module is None:
        import filelock

        _module = filelock
    return _module


class LockTimeout(Exception):
    """The lock was not had before the deadline."""


class StateLock:
    """One run's lock file; `acquire`/`release` pairs may nest within a thread."""

    def __init__(self, path: str, what: str = "the lock") -> None:
        self.path = path
        self.what = what  # what the lock is, for messages: "the state lock of run r1"
        self._held = threading.local()  # per thread: (descriptor, depth), or absent

    def acquire(self, timeout: float) -> None:
        """Hold the lock, waiting at most `timeout` seconds; LockTimeout if it stays taken,
        StateError if its file cannot be opened (or created)."""
        held: tuple[int, int] | None = getattr(self._held, "fd_depth", None)
        if held is not None:
            self._held.fd_depth = (held[0], held[1] + 1)
            return
        deadline = time.monotonic() + timeout
        pause = FIRST_POLL_SECONDS
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                             0o600)
            except OSError as exc:
                raise _lockfiles.open_error(self.path, exc, self.what) from exc
            try:
                if _filelock().lock_descriptor(fd, blocking=False) and os.fstat(fd).st_nlink:
                    self._held.fd_depth = (fd, 1)
                    return
            except BaseException:
                os.close(fd)
                raise
            # taken, or (st_nlink 0) removed since it was opened: then lock its successor
            os.close(fd)
            if time.monotonic() >= deadline:
                raise LockTimeout(self.path)
            time.sleep(pause)
            pause = min(pause * 2, MAX_POLL_SECONDS)

    def release(self) -> None:
        """Let the lock go (the outermost release of this thread)."""
        fd, depth = self._held.fd_depth
        if depth > 1:
            self._held.fd_depth = (fd, depth - 1)
            return
        del self._held.fd_depth
        try:
            _filelock().unlock_descriptor(fd)
        finally:
            os.close(fd)  # closing the only descriptor of this open file releases it anyway
