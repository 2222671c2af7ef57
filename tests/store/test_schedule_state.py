"""The Store contract for schedule states (`schedule_state`, `save_schedule_state`), run against
every backend of test_contract (file and PostgreSQL); the file store's own files at the end."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _pg
import pytest
from test_contract import FileBackend, PostgresBackend

from wfrun.errors import ConflictError, StateError, UsageError
from wfrun.store.abc import Store
from wfrun.store.file import FileStore


@pytest.fixture(params=["file", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """One backend's storage (a file store's directory, or a PostgreSQL schema)."""
    if request.param == "postgres":
        with _pg.schema() as url:
            yield PostgresBackend(url)
    else:
        yield FileBackend(tmp_path / "state")


@pytest.fixture
def open_store(backend: Any) -> Callable[[], Store]:
    """Opens a new store object over the backend's storage (as another process would)."""
    return backend.open  # type: ignore[no-any-return]


def test_a_schedule_with_no_state_reads_as_none(open_store: Callable[[], Store]) -> None:
    assert open_store().schedule_state("daily-report") == (None, 0)


def test_a_saved_state_reads_back_with_its_revision_in_another_store(
        open_store: Callable[[], Store]) -> None:
    state = {"through": "2026-03-02T09:00:00.000Z", "last_run": "sched-w-20260302T0900Z",
             "paused": False, "skip": {"fire": None, "n": 1.5}, "name": "Zoë"}
    assert open_store().save_schedule_state("w", state, 0) == 1
    assert open_store().schedule_state("w") == (state, 1)
    assert open_store().save_schedule_state("w", {**state, "paused": True}, 1) == 2
    assert open_store().schedule_state("w") == ({**state, "paused": True}, 2)
    assert open_store().schedule_state("other") == (None, 0)


@pytest.mark.parametrize("expected", [0, 2, 7])
def test_a_save_with_a_stale_revision_is_refused_and_writes_nothing(
        open_store: Callable[[], Store], expected: int) -> None:
    open_store().save_schedule_state("w", {"n": 1}, 0)
    with pytest.raises(ConflictError):
        open_store().save_schedule_state("w", {"n": 2}, expected)
    assert open_store().schedule_state("w") == ({"n": 1}, 1)


def _save_once(backend: Any, barrier: Any, results: Any, n: int) -> None:
    store = backend.open()
    barrier.wait()
    try:
        store.save_schedule_state("w", {"winner": n}, 1)
    except ConflictError:
        results.put((n, False))
    else:
        results.put((n, True))


def test_of_concurrent_saves_with_one_revision_exactly_one_wins(backend: Any) -> None:
    backend.open().save_schedule_state("w", {"winner": None}, 0)
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(6), context.Queue()
    procs = [context.Process(target=_save_once, args=(backend, barrier, results, n))
             for n in range(6)]
    for proc in procs:
        proc.start()
    outcomes = dict(results.get(timeout=60) for _ in procs)
    for proc in procs:
        proc.join(timeout=60)
    winners = [n for n, won in outcomes.items() if won]
    assert len(outcomes) == 6 and len(winners) == 1
    assert backend.open().schedule_state("w") == ({"winner": winners[0]}, 2)


@pytest.mark.parametrize("name", ["", "Caps", "../x", "a/b", "-x", "x.y"])
def test_an_invalid_workflow_name_is_refused(open_store: Callable[[], Store], name: str) -> None:
    with pytest.raises(UsageError):
        open_store().schedule_state(name)
    with pytest.raises(UsageError):
        open_store().save_schedule_state(name, {}, 0)


def test_the_file_store_refuses_a_bad_name_before_touching_storage(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        FileStore(tmp_path / "state").save_schedule_state("../x", {}, 0)
    assert FileStore(tmp_path / "state").schedule_state("w") == (None, 0)
    assert not (tmp_path / "state").exists()


def test_a_long_workflow_name_is_kept_apart_from_its_neighbours(
        open_store: Callable[[], Store]) -> None:
    one, two = "a" * 300 + "1", "a" * 300 + "2"
    open_store().save_schedule_state(one, {"n": 1}, 0)
    open_store().save_schedule_state(two, {"n": 2}, 0)
    assert open_store().schedule_state(one) == ({"n": 1}, 1)
    assert open_store().schedule_state(two) == ({"n": 2}, 1)


# -- the file store's files ----------------------------------------------------------------------

def test_the_file_store_keeps_a_private_checksummed_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store.save_schedule_state("w", {"n": 1}, 0)
    path = tmp_path / "state" / "schedules" / "w.json"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.parent.stat().st_mode & 0o777 == 0o700
    assert [p.name for p in path.parent.iterdir() if ".tmp-" in p.name] == []
    path.write_text(path.read_text().replace('"n": 1', '"n": 2'))  # a hand edit
    with pytest.raises(StateError, match=r"schedules/w\.json is damaged"):
        FileStore(tmp_path / "state").schedule_state("w")
    with pytest.raises(StateError):  # and a save does not write over it
        FileStore(tmp_path / "state").save_schedule_state("w", {"n": 3}, 1)


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'{"revision": 1}'])
def test_an_unreadable_state_file_is_a_state_error(tmp_path: Path, content: bytes) -> None:
    store = FileStore(tmp_path / "state")
    store.save_schedule_state("w", {"n": 1}, 0)
    (tmp_path / "state" / "schedules" / "w.json").write_bytes(content)
    with pytest.raises(StateError, match="move it away"):
        FileStore(tmp_path / "state").schedule_state("w")


def test_a_failed_write_leaves_the_previous_state(tmp_path: Path) -> None:
    """Each durable write goes through _fsops (WFRUN_FAULT injects failures there)."""
    import subprocess
    import sys

    root = tmp_path / "state"
    FileStore(root).save_schedule_state("w", {"n": 1}, 0)
    code = ("import sys; from wfrun.store.file import FileStore; "
            "FileStore(sys.argv[1]).save_schedule_state('w', {'n': 2}, 1)")
    proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "WFRUN_FAULT": "enospc@2"})
    assert proc.returncode != 0 and "cannot write schedule state" in proc.stderr
    assert FileStore(root).schedule_state("w") == ({"n": 1}, 1)
