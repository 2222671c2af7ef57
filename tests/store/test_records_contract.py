"""The Store contract for what is kept beside a run's state: its history and logs, the URL
signing key and the manifest cache; run unchanged against every store (conftest.py)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import _stores
import pytest

from wfrun.errors import UsageError
from wfrun.model import Run
from wfrun.store.abc import Store

from ._runs import make_run


def test_history_appends_in_order(store: Store, open_store: Callable[[], Store]) -> None:
    store.create(make_run("r1"))
    store.append_history("r1", [{"type": "a"}, {"type": "b"}])
    store.append_history("r1", [{"type": "c"}])
    assert [e["type"] for e in store.read_history("r1")] == ["a", "b", "c"]
    assert [e["type"] for e in open_store().read_history("r1")] == ["a", "b", "c"]
    assert store.read_history("other") == []


def test_logs_append_in_order_and_read_from_a_cursor(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    assert store.read_logs("r1") == ([], 0)
    store.append_log("r1", [{"text": "a"}, {"text": "b"}])
    records, cursor = store.read_logs("r1")
    assert [r["text"] for r in records] == ["a", "b"]
    assert store.read_logs("r1", cursor) == ([], cursor)  # nothing new
    other = open_store()  # another process appends meanwhile
    other.append_log("r1", [{"text": "c"}])
    newer, later = store.read_logs("r1", cursor)
    assert [r["text"] for r in newer] == ["c"]
    assert later > cursor
    assert [r["text"] for r in open_store().read_logs("r1")[0]] == ["a", "b", "c"]
    store.append_log("r2", [{"text": "other run"}])
    assert [r["text"] for r in store.read_logs("r1")[0]] == ["a", "b", "c"]  # kept per run


def test_logs_are_not_runs_and_invalid_ids_are_refused(store: Store) -> None:
    store.create(make_run("r1"))
    store.append_log("r1", [{"text": "a"}])
    assert [r.run_id for r in store.iter_runs() if isinstance(r, Run)] == ["r1"]
    assert store.check()[1] == []
    with pytest.raises(UsageError):
        store.append_log("../x", [{"text": "a"}])
    with pytest.raises(UsageError):
        store.read_logs("../x")


def test_secret_key_is_stable_private_and_not_in_snapshots(
    store: Store, open_store: Callable[[], Store], backend: _stores.Backend
) -> None:
    key = store.secret_key()
    assert len(key) >= 32
    assert open_store().secret_key() == key
    store.create(make_run("r1"))
    assert key.hex().encode() not in backend.stored("r1") and key not in backend.stored("r1")


MANIFEST = {"name": "wf", "steps": [{"id": "ask", "wait": True, "timeout": "30d"},
                                    {"id": "after", "handler": "done", "retry": {"delay": 1.5}}]}


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_a_cached_manifest_is_read_back_by_another_process(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))  # the storage exists: a cache write may keep the document
    digest = _digest("steps: ...")
    assert store.cached_manifest(digest) is None
    store.cache_manifest(digest, MANIFEST)
    assert open_store().cached_manifest(digest) == MANIFEST
    assert open_store().cached_manifest(_digest("other bytes")) is None
    assert [r.run_id for r in open_store().iter_runs() if isinstance(r, Run)] == ["r1"]
    assert store.check()[1] == []  # a cache entry is not a run, nor a problem


@pytest.mark.parametrize("document", [
    {"steps": [{"id": "a", "sleep_until": datetime.date(2026, 1, 1)}]},  # YAML date
    {"steps": [{"id": "a"}], 1: "an int key"},
    {"steps": [{"id": "a", "timeout": float("nan")}]},
    {"steps": [{"id": "a", "tags": {"a", "b"}}]},  # YAML !!set
    {"steps": [{"id": "a", "data": b"\x00binary"}]},  # YAML !!binary
])
def test_a_manifest_that_json_would_change_is_not_cached(store: Store, document: object) -> None:
    store.create(make_run("r1"))
    digest = _digest(repr(document))
    store.cache_manifest(digest, document)
    assert store.cached_manifest(digest) is None


@pytest.mark.parametrize("bad", ["", "sha256:", "md5:" + "0" * 64, "sha256:" + "A" * 64,
                                 "sha256:" + "0" * 63, "sha256:../" + "0" * 61])
def test_a_malformed_manifest_digest_is_refused(store: Store, bad: str) -> None:
    with pytest.raises(ValueError):
        store.cached_manifest(bad)
    with pytest.raises(ValueError):
        store.cache_manifest(bad, MANIFEST)
