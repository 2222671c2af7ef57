"""The state directory's directories (made with exact modes) and the empty files index entries
are: hard links to their directory's blank file, so that an entry is a name, not an inode."""

from __future__ import annotations

import contextlib
import errno
import os
import stat

from wfrun.errors import StateError
from wfrun.store._faults import fault_point


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
        fault_point("link")
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


def names_in(path: str) -> list[str]:
    """The names in the state directory's subdirectory `path` (none if it is missing);
    StateError naming it if it cannot be read (its mode or owner: a restore, a `chmod`)."""
    try:
        return os.listdir(path)
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise StateError(
            f"cannot read directory {path}: {exc.strerror or exc}; it must belong to the user "
            f"running wfrun, mode 700 ('chown USER {path}' and 'chmod 700 {path}')") from exc
