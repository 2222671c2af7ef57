"""The file store's start tokens: one JSON file, `keys/tokens.json` (0600), replaced atomically.

It holds `{"schema_version": 1, "tokens": [record, ...]}`, oldest first (see `Store.save_token`
for a record's keys): hashes only, never a token. Changes are read-modify-writes under the
lock `keys/tokens.lock`, each a `durable_write` (temporary file, fsync, rename, directory
fsync); readers take no lock, as every version they can see is complete.
"""

from __future__ import annotations

import errno
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import wfrun.store._fsops as _fsops
from wfrun.errors import ConflictError, StateError
from wfrun.store._filestore_parts import FileStoreParts
from wfrun.store._statelock import LockTimeout, StateLock
from wfrun.store.abc import token_with_hash

SCHEMA_VERSION = 1
LOCK_TIMEOUT_SECONDS = 30.0
RECORD_KEYS = {"name", "workflow", "hash", "created_at", "revoked", "revoked_at"}


def _paths(store: FileStoreParts) -> tuple[str, str]:
    return store._path("keys", "tokens.json"), store._path("keys", "tokens.lock")


def _read(store: FileStoreParts) -> list[dict[str, Any]]:
    """The stored records ([] when there is no state directory or no token file yet)."""
    path, _ = _paths(store)
    if not store._exists_dir():
        return []
    try:
        _, raw = _fsops.read_whole(path)
    except FileNotFoundError:
        return []
    except OSError as exc:
        raise StateError(f"cannot read the token file {path}: {exc.strerror}") from exc
    try:
        document = json.loads(raw)
        records = document["tokens"]
        if document.get("schema_version") != SCHEMA_VERSION or not isinstance(records, list) \
                or not all(isinstance(r, dict) and r.keys() >= RECORD_KEYS for r in records):
            raise ValueError("unexpected content")
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise StateError(
            f"the token file {path} cannot be read ({exc}); restore it from a backup, or delete "
            "it (every start token then stops working: make new ones with 'wfrun token create')"
        ) from None
    return records


def _write(store: FileStoreParts, records: list[dict[str, Any]]) -> None:
    path, _ = _paths(store)
    data = json.dumps({"schema_version": SCHEMA_VERSION, "tokens": records}, indent=1,
                      ensure_ascii=False).encode() + b"\n"
    try:
        _fsops.durable_write(path, data)
    except OSError as exc:
        raise StateError(
            f"cannot write the token file {path}: {exc.strerror or exc}; it is unchanged"
            + ("; free some disk space" if exc.errno == errno.ENOSPC else "")
        ) from exc


@contextmanager
def _locked(store: FileStoreParts) -> Iterator[None]:
    store._ensure()
    lock = StateLock(_paths(store)[1], "the token file's lock")
    try:
        lock.acquire(timeout=LOCK_TIMEOUT_SECONDS)
    except LockTimeout:
        raise ConflictError(f"the token file is busy: its lock was held for over "
                            f"{LOCK_TIMEOUT_SECONDS:.0f}s; try again") from None
    try:
        yield
    finally:
        lock.release()


def save(store: FileStoreParts, record: dict[str, Any]) -> None:
    """`Store.save_token` for the file store."""
    with _locked(store):
        records = _read(store)
        if any(r["name"] == record["name"] for r in records):
            raise ConflictError(f"a token named {record['name']!r} exists already")
        _write(store, [*records, {key: record[key] for key in sorted(RECORD_KEYS)}])


def find(store: FileStoreParts, token_hash: str) -> dict[str, Any] | None:
    """`Store.find_token` for the file store: every stored hash is compared (no early exit)."""
    return token_with_hash(_read(store), token_hash)


def every(store: FileStoreParts) -> list[dict[str, Any]]:
    """`Store.tokens` for the file store."""
    return _read(store)


def revoke(store: FileStoreParts, name: str, at: str) -> dict[str, Any] | None:
    """`Store.revoke_token` for the file store."""
    if not any(r["name"] == name for r in _read(store)):
        return None  # (nothing to lock, nor a state directory to create)
    with _locked(store):
        records = _read(store)
        for record in records:
            if record["name"] == name:
                if not record["revoked"]:
                    record["revoked"], record["revoked_at"] = True, at
                    _write(store, records)
                return record
    return None
