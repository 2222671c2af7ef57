"""Lines appended to the files that grow (a run's history and its step logs) through
descriptors kept open, and their fsync when the store owes it."""

from __future__ import annotations

import os
import threading

from wfrun.store._faults import fault_point

# Files appended to recently, kept open: path -> (descriptor, device, inode, size after this
# process's last append). Threads (serve) share it under the lock; fsync works on a duplicate,
# so no descriptor is closed under it.
_APPENDING: dict[str, tuple[int, int, int, int]] = {}
_MAX_APPENDING = 64
_appending_lock = threading.Lock()


def append_line(path: str, data: bytes) -> None:
    """Append lines to a file in one write (O_APPEND), creating it 0600 if needed.

    If the file ends inside a line (a writer died mid-append), a newline goes first, so that
    the torn line stays alone and unreadable instead of swallowing these lines too. A file
    still the size this process's last append left it ends with that append's newline: its
    last byte is not read again."""
    with _appending_lock:
        fd, size, mine = _appending(path)
        if size and size != mine and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        written = os.write(fd, data)  # (a regular file takes all of it, or raises)
        _APPENDING[path] = (*_APPENDING[path][:3], size + written if written == len(data) else -1)


def _appending(path: str) -> tuple[int, int, int]:
    """A descriptor appending to `path` (the one kept open if `path` is still that file), the
    file's size, and its size after this process's last append to it (-1 if none)."""
    kept = _APPENDING.get(path)
    if kept is not None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == kept[1:3]:
            return kept[0], st.st_size, kept[3]
        os.close(_APPENDING.pop(path)[0])  # deleted or replaced: append to the file there now
    elif len(_APPENDING) >= _MAX_APPENDING:
        os.close(_APPENDING.pop(next(iter(_APPENDING)))[0])
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # read: its last byte
    opened = os.fstat(fd)
    if opened.st_mode & 0o077:  # restored from a backup as 0644, say: private again
        os.fchmod(fd, 0o600)
    _APPENDING[path] = (fd, opened.st_dev, opened.st_ino, -1)
    return fd, opened.st_size, -1


def close_kept() -> None:
    """Close the descriptors kept for later appends (a tick short of descriptors does)."""
    with _appending_lock:
        while _APPENDING:
            os.close(_APPENDING.popitem()[1][0])


def fsync_file(path: str) -> None:
    """fsync an existing file's data (used for history at the end of a command)."""
    with _appending_lock:
        kept = _APPENDING.get(path)
        fd = os.dup(kept[0]) if kept is not None else None
    if fd is None:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return
    try:
        fault_point("fsync")
        os.fsync(fd)
    finally:
        os.close(fd)
