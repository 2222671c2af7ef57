"""The per-run state lock: an exclusive kernel flock on `locks/RUN.lock`, waited for until a
deadline.

The file store already takes flocks itself for execution claims (`locks/RUN.exec`); the state
lock works the same way instead of going through the filelock package, whose import alone
costs a cold command ~17 ms (a tenth of `wfrun resume`), and an acquire and release ~160 µs
(this one: ~15 µs).

Semantics (those filelock gave, as the store used it): reentrant within a thread; another
thread or process waits (the lock is a flock on a descriptor of each holder's own, and flocks
on different open files of one inode exclude each other, within a process too); the lock file
is kept, created 0600; a holder's death releases the lock.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time

POLL_SECONDS = 0.05


class LockTimeout(Exception):
    """The lock was not had before the deadline."""


class StateLock:
    """One lock file; `acquire`/`release` pairs may nest within a thread."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._held = threading.local()  # per thread: (descriptor, depth) or absent

    def acquire(self, timeout: float) -> None:
        """Hold the lock, waiting at most `timeout` seconds; LockTimeout if it stays taken."""
        held: tuple[int, int] | None = getattr(self._held, "fd_depth", None)
        if held is not None:
            self._held.fd_depth = (held[0], held[1] + 1)
            return
        deadline = time.monotonic() + timeout
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                if time.monotonic() >= deadline:
                    raise LockTimeout(self.path) from None
                time.sleep(POLL_SECONDS)
                continue
            except BaseException:
                os.close(fd)
                raise
            try:
                if os.fstat(fd).st_nlink:  # else the file was deleted meanwhile: lock its successor
                    self._held.fd_depth = (fd, 1)
                    return
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    def release(self) -> None:
        """Let the lock go (the outermost release of this thread closes the descriptor)."""
        fd, depth = self._held.fd_depth
        if depth > 1:
            self._held.fd_depth = (fd, depth - 1)
            return
        del self._held.fd_depth
        os.close(fd)  # closing the only descriptor of this open file releases its flock
