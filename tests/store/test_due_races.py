"""The due index under concurrent processes: a `tick` removing the empty hour buckets older than
its clock never makes another process's write fail (issue 18, point 1)."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from wfrun.errors import StateError
from wfrun.model import PAUSE_SUSPEND, RUNNING, SUSPENDED, Run, StepState
from wfrun.store import _dirs
from wfrun.store.abc import Durability
from wfrun.store.file import FileStore

HOUR = "2026-01-01T09"  # the writer's runs are due in this hour bucket while they execute
LATER = "2026-01-02T09:00:00.000Z"  # the tick's clock: a day later, every bucket above is old


def _run(run_id: str) -> Run:
    return Run(run_id=run_id, workflow="wf", input=None, created_at=f"{HOUR}:00:00.000Z",
               updated_at=f"{HOUR}:00:00.000Z", steps={"a": StepState()})


def _toggle(run: Run, executing: bool) -> None:
    """Executing: due at once (in HOUR); suspended: due in 2030 (HOUR's bucket left empty)."""
    step = run.steps["a"]
    if executing:
        run.status, run.running_since = RUNNING, f"{HOUR}:30:00.000Z"
        step.status, step.pause = RUNNING, None
    else:
        run.status, run.running_since = SUSPENDED, None
        step.status = SUSPENDED
        step.pause = {"kind": PAUSE_SUSPEND, "since": f"{HOUR}:00:00.000Z",
                      "due_at": "2030-01-01T00:00:00.000Z", "nonce": "n"}


def _writer(root: str, seconds: float, failures: multiprocessing.Queue[str]) -> None:
    store = FileStore(root)
    run = store.load("w")
    deadline, executing = time.monotonic() + seconds, False
    with store.batch():  # (no directory fsync per save: more writes per second)
        while time.monotonic() < deadline:
            _toggle(run, executing)
            executing = not executing
            try:
                with store.lock(run.run_id):
                    store.save(run, durability=Durability.BATCH)
            except StateError as exc:
                failures.put(exc.message)
                run = store.load(run.run_id)


def _ticker(root: str, seconds: float) -> None:
    store = FileStore(root)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        store.due(LATER)


def test_a_write_never_fails_because_a_tick_removed_an_empty_bucket(tmp_path: Path) -> None:
    root = str(tmp_path / "state")
    FileStore(root).create(_run("w"))  # (HOUR's bucket holds only this run's entry)
    ctx = multiprocessing.get_context("fork")
    failures: multiprocessing.Queue[str] = ctx.Queue()
    procs = [ctx.Process(target=_writer, args=(root, 1.5, failures)),
             ctx.Process(target=_ticker, args=(root, 1.5))]
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join(30)
    seen = []
    while not failures.empty():
        seen.append(failures.get())
    assert not seen, f"{len(seen)} write(s) failed, first: {seen[0]}"
    assert [proc.exitcode for proc in procs] == [0, 0]
    run = FileStore(root).load("w")
    assert run.status in (RUNNING, SUSPENDED)


def test_an_entry_whose_old_empty_bucket_a_tick_removes_meanwhile_makes_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other order: the bucket is there when the writer looks, old and empty, and a tick
    removes it before the entry is made (the tick is run at that very moment)."""
    root = tmp_path / "state"
    run = _run("w")
    _toggle(run, executing=False)
    FileStore(root).create(run)
    bucket = root / "due" / HOUR.replace("-", "")
    bucket.mkdir(mode=0o700)
    os.utime(bucket, (time.time() - 3600, time.time() - 3600))  # emptied an hour ago
    real = _dirs.link_blank
    ticks: list[list[str]] = []

    def tick_first(directory: str, path: str, *, counted: bool = False) -> None:
        if not ticks:
            ticks.append(FileStore(root).due(LATER))  # another process's tick, right now
            assert not bucket.exists(), "the tick kept the old empty bucket"
        real(directory, path, counted=counted)

    monkeypatch.setattr(_dirs, "link_blank", tick_first)
    store = FileStore(root)
    _toggle(run, executing=True)
    with store.lock("w"):
        store.save(run)  # its entry goes into HOUR's bucket
    assert ticks == [[]]
    assert sorted(p.name for p in bucket.iterdir()) == [".blank", "20260101T093000.000Z~w"]
    assert FileStore(root).due(LATER) == ["w"]


def test_entries_are_names_of_their_buckets_blank_and_a_bucket_left_with_it_goes(
        tmp_path: Path) -> None:
    """A due entry is a hard link to its bucket's blank file, not an inode of its own (creating
    one costs more than an fsync on some file systems); a bucket whose entries all went, left
    with its blank, is removed once old, as an empty one is."""
    root = tmp_path / "state"
    store = FileStore(root)
    for run_id in ("a", "b"):
        run = _run(run_id)
        _toggle(run, executing=True)
        store.create(run)
    bucket = root / "due" / HOUR.replace("-", "")
    blank = os.stat(bucket / ".blank")
    assert {os.stat(p).st_ino for p in bucket.iterdir()} == {blank.st_ino}
    assert blank.st_nlink == 3 and blank.st_size == 0 and blank.st_mode & 0o777 == 0o600
    assert store.due(LATER) == ["a", "b"]
    for run_id in ("a", "b"):
        run = store.load(run_id)
        _toggle(run, executing=False)  # due in 2030: its entry leaves HOUR's bucket
        with store.lock(run_id):
            store.save(run)
    assert [p.name for p in bucket.iterdir()] == [".blank"]
    os.utime(bucket, (time.time() - 3600, time.time() - 3600))  # emptied an hour ago
    assert FileStore(root).due(LATER) == []
    assert not bucket.exists()
    assert store.check()[1] == []
