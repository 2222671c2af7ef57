"""The secret that signs resume and cancel URLs: created once, 0600, shared by every process."""

from __future__ import annotations

import errno
import os
import re
import stat
from contextlib import suppress

import wfrun.store._fsops as _fsops
from wfrun.errors import ConflictError, StateError, UsageError

KEY_BYTES = 32
# the names a new key is written under before it is linked into place (`_temp_name`, and
# durable_write's own temporary file for that name)
TEMP_NAME = re.compile(r"(\.tmp-[0-9a-f]{12}-)?url\.key\.tmp-[0-9a-f]{12}")


def _temp_name(path: str) -> str:
    return path + f".tmp-{os.urandom(6).hex()}"


def leftover_note(path: str) -> str:
    """What `doctor` says of a temporary key file at `path` (a name TEMP_NAME matches): a
    process killed while it made the key left it. It is harmless: never read (the key is
    `url.key` alone; this one is either the same key, a second name of it, or one that never
    became it), so it is a note, not a problem."""
    return (f"{path} is a temporary file left by a process killed while it made the URL "
            f"signing key; it is never read and is harmless: remove it with "
            f"'rm {path}'")


def load_or_create(path: str) -> bytes:
    """The key stored at `path`, creating it (durably, race-free) if it is missing.

    A key shorter than KEY_BYTES is refused (StateError), never used or replaced: wfrun never
    leaves one (it links a complete, fsynced key into place), so it was damaged or put there
    by hand, and links may have been issued with it; the message says to restore or delete it.
    A key others may read (restored from a backup as 0644) is made 0600 again."""
    key = _read(path)
    if key is None:
        key = _create(path)
    if len(key) < KEY_BYTES:
        raise StateError(short_key_problem(path, len(key)))
    return key


def short_key_problem(path: str, size: int) -> str:
    """What is wrong with a key of `size` bytes at `path`, and what to do (for `doctor` too)."""
    return (f"the URL signing key {path} has {size} byte(s), fewer than the {KEY_BYTES} it "
            "must have (damaged, or replaced by hand), and is not used: restore it from a "
            "backup, or delete it to have a new one made (links signed with the old key then "
            "stop working)")


def _read(path: str) -> bytes | None:
    """The key's bytes (None if there is no key), tightening its mode to 0600 if needed."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise StateError(f"cannot read the URL signing key {path}: {exc.strerror}") from exc
    try:
        st = os.fstat(fd)
        if stat.S_IMODE(st.st_mode) & 0o077:
            with suppress(OSError):  # (another user's file: doctor reports its mode)
                os.fchmod(fd, 0o600)
        return os.read(fd, max(st.st_size, KEY_BYTES) + 1)
    except OSError as exc:
        raise StateError(f"cannot read the URL signing key {path}: {exc.strerror}") from exc
    finally:
        os.close(fd)


def _create(path: str) -> bytes:
    """Make a new key at `path`, or read the one another process made first."""
    # Write the key under a temporary name, then link it into place: a concurrent process
    # either wins the link or reads the complete key the winner wrote.
    tmp = _temp_name(path)
    try:
        _fsops.durable_write(tmp, os.urandom(KEY_BYTES))
        try:
            os.link(tmp, path)
            _fsops.fsync_dir(os.path.dirname(path))  # the link must outlive a crash too
        except FileExistsError:
            pass
    except OSError as exc:
        raise StateError(
            f"cannot write the URL signing key {path}: {exc.strerror or exc}"
            + ("; free some disk space" if exc.errno == errno.ENOSPC else "")
        ) from exc
    finally:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
    return _read(path) or b""


def existing(path: str) -> bytes | None:
    """The key stored at `path`, or None if there is none; nothing is created. StateError for
    a key too short to use (see `load_or_create`)."""
    key = _read(path)
    if key is not None and len(key) < KEY_BYTES:
        raise StateError(short_key_problem(path, len(key)))
    return key


def adopt(path: str, key: bytes) -> bool:
    """Make `key` the key at `path` if there is none (durably, race-free as `_create`); True if
    it was put there, False if it was there already. ConflictError, changing nothing, if
    another key is stored there."""
    if len(key) < KEY_BYTES:
        raise UsageError(f"a URL signing key of {len(key)} byte(s) cannot be adopted: it needs "
                         f"at least {KEY_BYTES}")
    found = existing(path)
    adopted = False
    if found is None:
        tmp = _temp_name(path)
        try:
            _fsops.durable_write(tmp, key)
            try:
                os.link(tmp, path)
                _fsops.fsync_dir(os.path.dirname(path))
                adopted = True
            except FileExistsError:
                pass  # another process made a key meanwhile: compared below
        except OSError as exc:
            raise StateError(
                f"cannot write the URL signing key {path}: {exc.strerror or exc}"
                + ("; free some disk space" if exc.errno == errno.ENOSPC else "")
            ) from exc
        finally:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
        found = existing(path)
    if found != key:
        raise ConflictError(
            f"the URL signing key {path} differs from the one being copied: resume and cancel "
            "links signed by either would stop working; copy into a store that has no key yet "
            "or the same one")
    return adopted
