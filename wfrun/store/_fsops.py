"""Durable file operations (temp file, fsync, replace, directory fsync) with fault injection.

Every write the file store makes goes through `durable_write` / `durable_replace` /
`link_blank` / `volatile_write` here, so a test can make the N-th operation kill the process
or fail with ENOSPC/EIO by setting `WFRUN_FAULT=kill@N`, `enospc@N` or `eio@N` (operations
counted: write, fsync, link, replace, dirsync). Without the variable the hook costs one integer
increment per operation.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
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
        _forget_spare(path, spare)
        raise
    os.close(fd)
    _op("link")
    try:
        kept = _link_old(path, other)
    except BaseException:
        _forget_spare(path, spare)
        raise
    try:
        _op("replace")
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
    if len(_SEEN) >= _MAX_KNOWN:
        _SEEN.clear()
    _SEEN[path] = (*version, _SYNCS_BEGUN.get(os.path.dirname(path), 0))


def _installed(path: str, spare: os.stat_result, directory: str) -> None:
    """Remember the version `durable_replace` just renamed over `path` (durable at the next
    fsync of its directory): the spare's inode, `spare` its stat (a rename keeps the inode,
    and the run's lock keeps other writers out, so no stat of `path` is needed)."""
    if len(_INSTALLED) >= _MAX_KNOWN:
        _INSTALLED.clear()
    _INSTALLED[path] = (spare.st_dev, spare.st_ino, directory)


def _synced(directory: str, number: int) -> None:
    """The directory fsync numbered `number` completed: the versions installed in the
    directory before it began are durable."""
    _SYNCED_THROUGH[directory] = max(_SYNCED_THROUGH.get(directory, 0), number)
    for path in [p for p, known in _INSTALLED.items() if known[2] == directory]:
        device, inode, _ = _INSTALLED.pop(path)
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


def make_dir(path: str, mode: int = 0o700, parents_mode: int = 0o700) -> bool:
    """Create a directory with exactly `mode` (whatever the umask), and its missing parents
    with `parents_mode` less the umask; False if it exists already (left as it is)."""
    if not _mkdir(path, mode, parents_mode):
        return False
    os.chmod(path, mode)  # (the umask may have taken bits away)
    return True


def _mkdir(path: str, mode: int, parents_mode: int) -> bool:
    """mkdir, making missing parents first (mkdir -p with modes); False if it existed."""
    try:
        os.mkdir(path, mode)
    except FileExistsError:
        return False
    except FileNotFoundError:
        parent = os.path.dirname(path)
        if not parent or parent == path:
            raise
        _mkdir(parent, parents_mode, parents_mode)
        try:
            os.mkdir(path, mode)
        except FileExistsError:
            return False
    return True


BLANK = ".blank"  # the empty file an index directory's entries are hard links to
_MAX_LINKS_TRIES = 3


def link_blank(directory: str, path: str, *, counted: bool = False) -> None:
    """Make the empty marker `path` (an index entry) a hard link to its directory's blank file
    (made if missing): a new name, not a new inode, so an entry costs what a rename does
    (creating an inode costs more than an fsync on some file systems). A blank with as many
    links as the file system allows is replaced by a fresh one. FileExistsError if the entry
    exists; FileNotFoundError if the directory does not. Its name is durable only once the
    caller fsyncs the directory. `counted`: a file operation for WFRUN_FAULT (a due-index
    entry is; a run-index entry, a hint, is not)."""
    if counted:
        _op("link")
    blank = f"{directory}/{BLANK}"
    for _ in range(_MAX_LINKS_TRIES):
        try:
            os.link(blank, path)
            return
        except FileNotFoundError:
            if not os.path.isdir(directory):
                raise
            with contextlib.suppress(FileExistsError):  # (or another process made it meanwhile)
                make_empty(blank)
        except OSError as exc:
            if exc.errno != errno.EMLINK:
                raise
            fresh = f"{directory}/{BLANK}-{os.getpid()}-{os.urandom(4).hex()}"
            make_empty(fresh)
            os.replace(fresh, blank)  # the entries keep the old one; new ones link this
    make_empty(path)  # the blank kept changing under this process: an inode of its own


def make_empty(path: str) -> None:
    """Create an empty file, 0600, in one system call (mknod); FileExistsError if it exists."""
    try:
        os.mknod(path, 0o600 | stat.S_IFREG)
    except PermissionError:  # a system that allows no mknod: open and close it
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600))


def volatile_write(fd: int, data: bytes) -> None:
    """Replace an open file's content with `data` without fsync: it survives the death of this
    process (the page cache keeps it) but not a power cut. Never used on a snapshot."""
    _op("write")
    view, offset = memoryview(data), 0
    while offset < len(data):
        offset += os.pwrite(fd, view[offset:], offset)
    if os.fstat(fd).st_size > len(data):  # (usually empty: then no truncation to journal)
        os.ftruncate(fd, len(data))  # a crash before this leaves trailing bytes: fails to verify


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
