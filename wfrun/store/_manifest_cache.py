"""The file store's cache of parsed manifests, so a resume or tick need not import YAML.

Layout: `.wfstate/cache/manifest-HEX.json` (0600, directory 0700), where HEX is the sha256 of
the manifest's bytes. An entry is one header line `{"digest": ..., "checksum": ...}` then the
document as JSON; `checksum` is the sha256 of those document bytes.

The cache is not state: a missing, torn, tampered or unreadable entry reads as a miss (the
caller parses the manifest again), and a write that fails is dropped silently. Entries are
written atomically (temporary file, then `os.replace`) but never fsynced: after a power cut an
entry may be missing or torn, which only costs one parse. Entries are never removed (one per
manifest version; they are small). Nothing is read from or written to a state directory that
does not exist or that another user could write to (a planted entry could name another step
module), and the state directory is never created just to cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from contextlib import suppress
from typing import Any

_PREFIX = "sha256:"
_HEX = frozenset("0123456789abcdef")
_SUBDIR = "cache"


def check_digest(digest: str) -> str:
    """The hex part of a manifest digest (`sha256:` and 64 lowercase hex digits); ValueError
    if `digest` is not one (every store refuses it alike)."""
    hex_part = digest[len(_PREFIX):] if isinstance(digest, str) else ""
    if not (isinstance(digest, str) and digest.startswith(_PREFIX) and len(hex_part) == 64
            and _HEX.issuperset(hex_part)):
        raise ValueError(f"not a manifest digest (sha256:HEX): {digest!r}")
    return hex_part


def _entry_path(root: str, digest: str) -> str:
    return os.path.join(root, _SUBDIR, f"manifest-{check_digest(digest)}.json")


def _private_dir(path: str) -> bool:
    """True if `path` is a directory of this user that no one else can write to."""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o022


def read(root: str, digest: str) -> Any:
    """The document cached under `digest`, or None (missing, unverifiable, or unsafe place)."""
    path = _entry_path(root, digest)
    if not (_private_dir(root) and _private_dir(os.path.dirname(path))):
        return None
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
        header_bytes, _, body = raw.partition(b"\n")
        header = json.loads(header_bytes)
        if (not isinstance(header, dict) or header.get("digest") != digest
                or header.get("checksum") != hashlib.sha256(body).hexdigest()):
            return None
        return json.loads(body)
    except (OSError, ValueError, RecursionError):  # JSONDecodeError and UnicodeError included
        return None


def encode(document: Any) -> bytes | None:
    """The document as JSON bytes, or None if it does not come back from JSON unchanged
    (YAML dates, sets, binary, non-string keys, NaN...)."""
    try:
        text = json.dumps(document, ensure_ascii=False)
        if json.loads(text) != document:
            return None
        return text.encode()  # UnicodeEncodeError (a lone surrogate) is a ValueError
    except (TypeError, ValueError, RecursionError):
        return None


def write(root: str, digest: str, document: Any) -> None:
    """Cache `document` under `digest` if it round-trips through JSON; never raises for I/O."""
    path = _entry_path(root, digest)
    if not _private_dir(root):
        return
    body = encode(document)
    if body is None:
        return
    header = json.dumps({"digest": digest, "checksum": hashlib.sha256(body).hexdigest()})
    directory = os.path.dirname(path)
    tmp = os.path.join(directory, f".tmp-{os.urandom(6).hex()}-{os.path.basename(path)}")
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        if not _private_dir(directory):
            return
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb", closefd=False) as fh:
                fh.write(header.encode() + b"\n" + body)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with suppress(OSError):
            os.unlink(tmp)
