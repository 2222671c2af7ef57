"""Durable file operations (temp file, fsync, replace, directory fsync) with fault injection.

Every write the file store makes goes through `durable_write` / `durable_replace` /
`create_empty` / `volatile_write` here, so a test can make the N-th operation kill the process
or fail with ENOSPC/EIO by setting `WFRUN_FAULT=kill@N`, `enospc@N` or `eio@N` (operations
counted: write, fsync, link, replace, spare, dirsync). Without the variable the hook costs one integer
increment per operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import threading

_FAULT_KIND = ""
_FAULT_AT = 0
_fault_spec = os.environ.get("WFRUN_FAULT", "")
if "@" in _fault_spec:
    _kind, _, _at = _fault_spec.partition("@")
    if _kind in ("kill", "enospc", "eio") and _at.isdigit():
        _FAULT_KIND, _FAULT_AT = _kind, int(_at)
_op_count = 0


def _op(name: str) -> None:
    """Count one file operation and inject the configured fault when its turn comes."""
    global _op_count
    _op_count += 1
    if _FAULT_AT and _op_count == _FAULT_AT:
        if _FAULT_KIND == "kill":
            os._exit(137)
        code = errno.ENOSPC if _FAULT_KIND == "enospc" else errno.EIO
        raise OSError(code, f"{os.strerror(code)} (injected at {name} #{_op_count})")


_DIRS: dict[str, tuple[int, int, int]] = {}  # path -> (descriptor, device, inode), a few
_MAX_DIRS = 8


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable.

    The directory stays open for the next call (opening a file is not cheap everywhere); a
    stat checks that `path` is still that directory, in case it was replaced meanwhile."""
    _op("dirsync")
    st = os.stat(path)
    kept = _DIRS.get(path)
    if kept is None or kept[1:] != (st.st_dev, st.st_ino):
        if kept is not None:
            os.close(kept[0])
        elif len(_DIRS) >= _MAX_DIRS:
            os.close(_DIRS.pop(next(iter(_DIRS)))[0])
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        opened = os.fstat(fd)
        kept = _DIRS[path] = (fd, opened.st_dev, opened.st_ino)
    os.fsync(kept[0])


def durable_write(path: str, data: bytes) -> None:
    """Atomically and durably replace `path` with `data` (mode 0600).

    Writes a temporary file in the same directory, fsyncs it, renames it over `path` and
    fsyncs the directory. On any error the temporary file is removed, the old file is left as
    it was, and the error propagates: a failed fsync is never retried on the same file.
    """
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".tmp-{os.urandom(6).hex()}-{os.path.basename(path)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        try:
            _op("write")
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            _op("fsync")
            os.fsync(fd)
        finally:
            os.close(fd)
        _op("replace")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def durable_replace(path: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Like `durable_write`, but the temporary file is the inode the previous version of `path`
    left behind (kept as `.NAME.spare`), so no file is created or freed.

    Creating an inode costs more than the fsync on some file systems (about 0.5 ms here). The
    spare is written and fsynced while `path` still holds the old version; then `path` is
    linked as `.NAME.prev`, the spare renamed over `path`, and `.NAME.prev` renamed to be the
    next spare. A crash at any point leaves `path` old or new (never torn); the next write
    mends the names (`_open_spare`, `_link_prev`). Callers must serialise writers of `path`
    (the run's lock), and the directory fsync of one write must precede the next write of the
    same path, which reuses the inode the previous version was in: with `sync_dir=False` the
    caller owes it (`fsync_dir`).
    On a failed write or fsync the spare is deleted, so fsync is never retried on the same file.
    """
    directory, name = os.path.split(path)
    spare = os.path.join(directory, f".{name}.spare")
    prev = os.path.join(directory, f".{name}.prev")
    fd, size = _open_spare(spare)
    try:
        _op("write")
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        if size > len(data):  # (a run's snapshots mostly grow: the spare is an older version)
            os.ftruncate(fd, len(data))
        _op("fsync")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(spare)
        raise
    os.close(fd)
    _op("link")
    try:
        kept = _link_prev(path, prev)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(spare)
        raise
    try:
        _op("replace")
        os.replace(spare, path)
    except BaseException:
        if kept:
            with contextlib.suppress(OSError):
                os.unlink(prev)  # `path` still holds that version
        raise
    if kept:
        _op("spare")
        os.replace(prev, spare)
    if sync_dir:
        fsync_dir(directory)


def _link_prev(path: str, prev: str) -> bool:
    """Link `path` (the version being replaced) as `prev`; False if `path` does not exist yet.

    A `prev` left by a writer killed inside `durable_replace` is never the only name of the
    current version (before the swap `path` names it too; after it, `path` names the newer
    one), so it is removed and the link made again. Looking for it only when the link fails
    saves a system call on every write."""
    try:
        os.link(path, prev)
    except FileNotFoundError:
        return False  # the first version of `path`: nothing to keep as the next spare
    except FileExistsError:
        os.unlink(prev)
        os.link(path, prev)
    return True


def _open_spare(spare: str) -> tuple[int, int]:
    """The spare, opened for writing, and its size; a fresh file if it is missing or has other
    names."""
    try:
        fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), 0
    st = os.fstat(fd)
    if st.st_nlink == 1:
        return fd, st.st_size
    os.close(fd)  # also linked elsewhere (by hand?): never write into a file that may be live
    os.unlink(spare)
    return os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600), 0


def read_whole(path: str) -> tuple[os.stat_result, bytes]:
    """A file's stat and bytes, read through one descriptor (no buffered file object: its
    terminal and seek checks are syscalls of their own)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        chunks: list[bytes] = []
        offset, want = 0, st.st_size + 4096  # room for growth since the fstat
        while True:
            chunk = os.pread(fd, want, offset)
            chunks.append(chunk)
            offset += len(chunk)
            if len(chunk) < want:  # a short read of a regular file: its end
                return st, b"".join(chunks)
    finally:
        os.close(fd)


def create_empty(path: str) -> None:
    """Create an empty marker file (mode 0600) and make its name durable."""
    _op("write")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    os.close(fd)
    fsync_dir(os.path.dirname(path))


def volatile_write(fd: int, data: bytes) -> None:
    """Replace an open file's content with `data` without fsync: it survives the death of this
    process (the page cache keeps it) but not a power cut. Never used on a snapshot."""
    _op("write")
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if os.fstat(fd).st_size > len(data):  # (usually empty: then no truncation to journal)
        os.ftruncate(fd, len(data))  # a crash before this leaves trailing bytes: fails to verify


# Files appended to recently, kept open: path -> (descriptor, device, inode). Threads (serve)
# share it under the lock; fsync works on a duplicate, so no descriptor is closed under it.
_APPENDING: dict[str, tuple[int, int, int]] = {}
_MAX_APPENDING = 64
_appending_lock = threading.Lock()


def append_line(path: str, data: bytes) -> None:
    """Append lines to a file in one write (O_APPEND), creating it 0600 if needed.

    If the file ends inside a line (a writer died mid-append), a newline goes first, so that
    the torn line stays alone and unreadable instead of swallowing these lines too."""
    with _appending_lock:
        fd = _appending(path)
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        os.write(fd, data)


def _appending(path: str) -> int:
    """A descriptor appending to `path`: the one kept open if `path` is still that file."""
    kept = _APPENDING.get(path)
    if kept is not None:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            st = None
        if st is not None and (st.st_dev, st.st_ino) == kept[1:]:
            return kept[0]
        os.close(_APPENDING.pop(path)[0])  # deleted or replaced: append to the file there now
    elif len(_APPENDING) >= _MAX_APPENDING:
        os.close(_APPENDING.pop(next(iter(_APPENDING)))[0])
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)  # read: its last byte
    opened = os.fstat(fd)
    _APPENDING[path] = (fd, opened.st_dev, opened.st_ino)
    return fd


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
        _op("fsync")
        os.fsync(fd)
    finally:
        os.close(fd)
