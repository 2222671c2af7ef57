"""The file store's manifest cache (wfrun/store/_manifest_cache.py): never trusted blindly.

A cache entry that is torn, tampered with, filed under another digest or kept where another
user could write must read as a miss; writing one never creates the state directory.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from wfrun.model import Run
from wfrun.store.file import FileStore

DOC = {"steps": [{"id": "ask", "wait": True}, {"id": "after", "handler": "done"}]}
DIGEST = "sha256:" + hashlib.sha256(b"the manifest's bytes").hexdigest()


def cached_store(tmp_path: Path) -> tuple[FileStore, Path]:
    """A file store whose state directory exists, with DOC cached; and the entry's path."""
    store = FileStore(tmp_path / "state")
    store.secret_key()  # creates the state directory, as any first command that writes does
    store.cache_manifest(DIGEST, DOC)
    entries = list((tmp_path / "state" / "cache").iterdir())
    assert len(entries) == 1
    return store, entries[0]


def test_an_entry_is_private_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    _, entry = cached_store(tmp_path)
    assert [p.name for p in entry.parent.iterdir()] == [entry.name]
    assert entry.stat().st_mode & 0o777 == 0o600
    assert entry.parent.stat().st_mode & 0o777 == 0o700
    assert entry.name == f"manifest-{DIGEST.removeprefix('sha256:')}.json"
    assert FileStore(tmp_path / "state").cached_manifest(DIGEST) == DOC


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage", "header only"])
def test_a_torn_or_tampered_entry_reads_as_a_miss(tmp_path: Path, damage: str) -> None:
    _, entry = cached_store(tmp_path)
    raw = entry.read_bytes()
    damaged = {
        "truncate": raw[:-5],
        "flip": raw.replace(b'"after"', b'"aftex"'),  # still valid JSON: the checksum catches it
        "empty": b"",
        "garbage": b"\xff\xfe not json \x00",
        "header only": raw.partition(b"\n")[0],
    }[damage]
    assert damaged != raw
    entry.write_bytes(damaged)
    assert FileStore(tmp_path / "state").cached_manifest(DIGEST) is None


def test_an_entry_filed_under_another_digest_reads_as_a_miss(tmp_path: Path) -> None:
    _, entry = cached_store(tmp_path)
    other = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
    entry.rename(entry.with_name(f"manifest-{other.removeprefix('sha256:')}.json"))
    assert FileStore(tmp_path / "state").cached_manifest(other) is None


@pytest.mark.parametrize("where", ["state", "cache"])
def test_nothing_is_read_or_written_where_others_can_write(tmp_path: Path, where: str) -> None:
    _, entry = cached_store(tmp_path)
    directory = tmp_path / "state" if where == "state" else entry.parent
    os.chmod(directory, 0o770)
    store = FileStore(tmp_path / "state")
    assert store.cached_manifest(DIGEST) is None
    other = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
    store.cache_manifest(other, DOC)
    assert sorted(p.name for p in entry.parent.iterdir()) == [entry.name]


def test_caching_never_creates_the_state_directory(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.cache_manifest(DIGEST, DOC)
    assert not (tmp_path / "state").exists()
    assert store.cached_manifest(DIGEST) is None
    assert not (tmp_path / "state").exists()


def test_a_failed_write_is_dropped_silently(tmp_path: Path) -> None:
    store, entry = cached_store(tmp_path)
    other = "sha256:" + hashlib.sha256(b"other bytes").hexdigest()
    blocker = entry.with_name(f"manifest-{other.removeprefix('sha256:')}.json")
    blocker.mkdir()  # the final rename fails (even for root)
    store.cache_manifest(other, DOC)  # no exception
    assert store.cached_manifest(other) is None
    assert store.cached_manifest(DIGEST) == DOC
    assert sorted(p.name for p in entry.parent.iterdir()) == sorted([entry.name, blocker.name])


def test_the_cache_is_not_state(tmp_path: Path) -> None:
    store, _ = cached_store(tmp_path)
    assert list(store.iter_runs()) == []
    assert store.check() == (0, [])
    assert not any(isinstance(r, Run) for r in store.iter_runs())
