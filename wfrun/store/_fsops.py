"""Whole files replaced atomically and durably (temp file, fsync, replace, directory fsync):
snapshots, keys and tokens, and a snapshot's write into the inode its previous version left
(`durable_replace`) with what makes that safe; reading them back whole. Each operation passes
a fault point (`_faults`)."""

from __future__ import annotations

import contextlib
import os
import threading

from wfrun.store._faults import fault_point

_DIRS: dict[str, tuple[int, int, int]] = {}  # path -> (descriptor, device, inode), a few
_MAX_DIRS = 8
# The bookkeeping below is shared by the threads of one process (`wfrun serve` executes runs
# in several): the kept directory descriptors, the fsync numbering and what they made durable.
_BOOK = threading.RLock()


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename or create inside it is durable.

    The directory stays open for the next call (opening a file is not cheap everywhere); a
    stat checks that `path` is still that directory, in case it was replaced meanwhile."""
    fault_point("dirsync")
    # held through the fsync: no other thread closes (or reuses) the descriptor meanwhile
    with _BOOK:
        number = _SYNCS_BEGUN[path] = _SYNCS_BEGUN.get(path, 0) + 1
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
        _synced(path, number)


def close_kept_dirs() -> None:
    """Close the directory descriptors `fsync_dir` keeps (a tick short of descriptors does)."""
    with _BOOK:
        while _DIRS:
            os.close(_DIRS.popitem()[1][0])


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
            fault_point("write")
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            fault_point("fsync")
            os.fsync(fd)
        finally:
            os.close(fd)
        fault_point("replace")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)


def durable_replace(path: str, data: bytes, *, sync_dir: bool = True) -> None:
    """Like `durable_write`, but the temporary file is the inode the previous version of `path`
    left behind, so no file is created or freed.

    Creating an inode costs more than the fsync on some file systems (about 0.5 ms here). That
    inode (the spare) goes by one of two hidden names, `.NAME.spare` or `.NAME.prev`, which
    take turns: the spare is written and fsynced while `path` still holds the old version; then
    `path` is linked under the other name (keeping the old version's inode as the next spare)
    and the spare is renamed over `path`. A crash at any point leaves `path` old or new (never
    torn); the next write mends the names (`_open_spare`, `_link_old`). Callers must serialise
    writers of `path` (the run's lock), and the directory fsync of one write must precede the
    next write of the same path, which reuses the inode the previous version was in: with
    `sync_dir=False` the caller owes it (`fsync_dir`).
    On a failed write or fsync the spare is deleted, so fsync is never retried on the same file.
    """
    fd, st, spare, other, reused = _open_spare(path)
    size = st.st_size
    try:
        if reused:  # an inode that held an earlier version of `path` (a fresh one needs none)
            _retired_durably(path)
        fault_point("write")
        view, offset = memoryview(data), 0
        while offset < len(data):
            offset += os.pwrite(fd, view[offset:], offset)
        if size > len(data):  # (a run's snapshots mostly grow: the spare is an older version)
            os.ftruncate(fd, len(data))
        fault_point("fsync")
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        _forget_spare(path, spare)
        raise
    os.close(fd)
    fault_point("link")
    try:
        kept = _link_old(path, other)
    except BaseException:
        _forget_spare(path, spare)
        raise
    try:
        fault_point("replace")
        os.replace(spare, path)
    except BaseException:
        if kept:
            with contextlib.suppress(OSError):
                os.unlink(other)  # `path` still holds that version
        raise
    if kept:
        _SPARES[path] = other
    else:
        _SPARES.pop(path, None)
    directory = _names(path)[2]
    _installed(path, st, directory)
    if sync_dir:
        fsync_dir(directory)


# The inode `durable_replace` writes into is the one the version before `path`'s current one
# was in. That is safe only once the rename that installed the current version is durable:
# until then the disk may still name that inode `path`, and a power cut during the write would
# leave `path` torn. A writer killed after its rename and before its directory fsync leaves
# exactly that, for the next writer of the run (another process) to find. So before writing
# into the spare, `_retired_durably` makes sure, fsyncing the directory itself when neither of
# these says the current version's rename is durable (both are facts of this process, not of
# clocks, so a command makes the same file operations every time):
# - this process installed the current version and fsynced the directory since (the inode
#   and ctime of `path` are what they were then): every step after a run's first;
# - this process saw the current version (`observe`: loading or claiming the run) before a
#   directory fsync that has completed began: the rename was made before it. A cold command
#   fsyncs once before its first write into a kept inode; a tick once per batch of runs it
#   claimed. A spare created afresh (`_open_spare`) held no version: it needs no check.
_SYNCS_BEGUN: dict[str, int] = {}  # directory -> fsyncs of it this process began
_SYNCED_THROUGH: dict[str, int] = {}  # directory -> the last of those that completed
_SEEN: dict[str, tuple[int, int, int, int]] = {}  # path -> device, inode, ctime, fsyncs begun
_INSTALLED: dict[str, tuple[int, int, str]] = {}  # path -> (device, inode, its directory)
# renamed in, not yet synced
_DURABLE: dict[str, tuple[int, int, int]] = {}  # path -> (device, inode, ctime) known durable
_MAX_KNOWN = 4096


def observe(path: str, st: os.stat_result | None = None) -> None:
    """Remember the version of `path` this process sees now (its stat, if already made): a
    directory fsync begun later makes the rename that installed it durable."""
    if st is None:
        try:
            st = os.stat(path)
        except OSError:
            return
    version = (st.st_dev, st.st_ino, st.st_ctime_ns)
    known = _SEEN.get(path)
    if known is not None and known[:3] == version:
        return  # seen before: the first sighting is what counts
    with _BOOK:
        if len(_SEEN) >= _MAX_KNOWN:
            _SEEN.clear()
        _SEEN[path] = (*version, _SYNCS_BEGUN.get(os.path.dirname(path), 0))


def _installed(path: str, spare: os.stat_result, directory: str) -> None:
    """Remember the version `durable_replace` just renamed over `path` (durable at the next
    fsync of its directory): the spare's inode, `spare` its stat (a rename keeps the inode,
    and the run's lock keeps other writers out, so no stat of `path` is needed)."""
    with _BOOK:
        if len(_INSTALLED) >= _MAX_KNOWN:
            _INSTALLED.clear()
        _INSTALLED[path] = (spare.st_dev, spare.st_ino, directory)


def _synced(directory: str, number: int) -> None:
    """The directory fsync numbered `number` completed: the versions installed in the
    directory before it began are durable."""
    _SYNCED_THROUGH[directory] = max(_SYNCED_THROUGH.get(directory, 0), number)
    for path in [p for p, known in list(_INSTALLED.items()) if known[2] == directory]:
        device, inode, _ = _INSTALLED.pop(path)  # (the caller holds _BOOK)
        try:
            st = os.stat(path)
        except OSError:
            continue
        if (st.st_dev, st.st_ino) == (device, inode):
            if len(_DURABLE) >= _MAX_KNOWN:
                _DURABLE.clear()
            _DURABLE[path] = (device, inode, st.st_ctime_ns)


def _retired_durably(path: str) -> None:
    """Make sure the rename that installed `path`'s current version is durable (see above)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return  # the first version: the spare, if any, is no version of `path`
    current = (st.st_dev, st.st_ino, st.st_ctime_ns)
    if _DURABLE.get(path) == current:
        return
    directory = os.path.dirname(path)
    seen = _SEEN.get(path)
    if seen is not None and seen[:3] == current and _SYNCED_THROUGH.get(directory, 0) > seen[3]:
        return
    fsync_dir(directory)


# path -> which of its two spare names holds the spare now, as this process last left it (a
# guess: `_open_spare` checks it, and another process's write may have turned the names).
_SPARES: dict[str, str] = {}
_MAX_SPARES = 4096


# path -> its two spare names and its directory, for the paths written
_SPARE_NAMES: dict[str, tuple[str, str, str]] = {}


def spare_paths(path: str) -> tuple[str, str]:
    """The two names the spare of `path` takes in turn: `.NAME.spare` and `.NAME.prev`."""
    names = _names(path)
    return names[0], names[1]


def _names(path: str) -> tuple[str, str, str]:
    """`spare_paths(path)` and the directory of `path`, worked out once per path."""
    names = _SPARE_NAMES.get(path)
    if names is None:
        directory, name = os.path.split(path)
        names = (os.path.join(directory, f".{name}.spare"),
                 os.path.join(directory, f".{name}.prev"), directory)
        if len(_SPARE_NAMES) >= _MAX_SPARES:
            _SPARE_NAMES.clear()
        _SPARE_NAMES[path] = names
    return names


def _open_spare(path: str) -> tuple[int, os.stat_result, str, str, bool]:
    """The spare, opened for writing, its stat, its name, the other spare name and whether it
    is an inode kept from an earlier version; a fresh file if neither name holds a file with no
    other name."""
    first, second, _ = _names(path)
    if _SPARES.get(path) == second:
        first, second = second, first
    for spare, other in ((first, second), (second, first)):
        try:
            fd = os.open(spare, os.O_WRONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            continue
        st = os.fstat(fd)
        if st.st_nlink == 1:
            if st.st_mode & 0o777 != 0o600:  # an inode restored from a backup keeps its mode
                os.fchmod(fd, 0o600)
            return fd, st, spare, other, True
        # Also named elsewhere: `path` itself (a writer was killed between its link and its
        # rename) or a link made by hand. Never write into a file that may be live.
        os.close(fd)
        os.unlink(spare)
    if len(_SPARES) >= _MAX_SPARES:
        _SPARES.clear()
    _SPARES[path] = first
    fd = os.open(first, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        return fd, os.fstat(fd), first, second, False
    except BaseException:
        os.close(fd)
        raise


def _forget_spare(path: str, spare: str) -> None:
    """Delete a spare whose write or fsync failed (fsync is never retried on a file)."""
    _SPARES.pop(path, None)
    with contextlib.suppress(OSError):
        os.unlink(spare)


def _link_old(path: str, other: str) -> bool:
    """Link `path` (the version being replaced) as `other`, the next spare; False if `path`
    does not exist yet.

    A file already named `other` is a second name of the current version, left by a writer
    killed inside `durable_replace`, or a spare `_open_spare` did not pick: never the only name
    of the current version, so it is removed and the link made again. Looking for it only when
    the link fails saves a system call on every write."""
    try:
        os.link(path, other)
    except FileNotFoundError:
        return False  # the first version of `path`: nothing to keep as the next spare
    except FileExistsError:
        os.unlink(other)
        os.link(path, other)
    return True


def read_whole(path: str) -> tuple[os.stat_result, bytes]:
    """A file's stat and bytes, read through one descriptor (no buffered file object: its
    terminal and seek checks are syscalls of their own)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        observe(path, st)
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


def volatile_write(fd: int, data: bytes) -> None:
    """Replace an open file's content with `data` without fsync: it survives the death of this
    process (the page cache keeps it) but not a power cut. Never used on a snapshot."""
    fault_point("write")
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if os.fstat(fd).st_size > len(data):  # (usually empty: then no truncation to journal)
        os.ftruncate(fd, len(data))  # a crash before this leaves trailing bytes: fails to verify
