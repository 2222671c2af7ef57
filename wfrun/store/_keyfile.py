"""The secret that signs resume and cancel URLs: created once, 0600, shared by every process."""

from __future__ import annotations

import errno
import os
from contextlib import suppress

from wfrun.errors import StateError
from wfrun.store import _fsops

KEY_BYTES = 32


def load_or_create(path: str) -> bytes:
    """The key stored at `path`, creating it (durably, race-free) if it is missing or short."""
    try:
        with open(path, "rb") as fh:
            key = fh.read()
    except FileNotFoundError:
        key = b""
    if len(key) >= KEY_BYTES:
        return key
    # Write the key under a temporary name, then link it into place: a concurrent process
    # either wins the link or reads the complete key the winner wrote.
    tmp = path + f".tmp-{os.urandom(6).hex()}"
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
    with open(path, "rb") as fh:
        return fh.read()
