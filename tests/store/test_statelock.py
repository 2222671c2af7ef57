"""The state lock (wfrun/store/_statelock.py): it is filelock's lock on the file (a FileLock on
the same path waits for it and it for a FileLock), processes and threads exclude each other, a
thread may nest it, a dead holder releases it, and a lock held too long is a ConflictError."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from filelock import FileLock, Timeout

from wfrun.errors import ConflictError
from wfrun.store import file as file_store
from wfrun.store._statelock import LockTimeout, StateLock
from wfrun.store.file import FileStore


def _hold(path: str, ready: Any, stop: Any, die: bool) -> None:
    StateLock(path).acquire(timeout=5)
    ready.set()
    if die:
        os._exit(0)  # the process dies holding the lock
    stop.wait(10)


def _holder(path: Path, die: bool = False) -> tuple[Any, Any]:
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold, args=(str(path), ready, stop, die))
    proc.start()
    assert ready.wait(10)
    return proc, stop


def test_it_is_the_lock_a_filelock_on_the_same_file_takes(tmp_path: Path) -> None:
    path = str(tmp_path / "r1.lock")
    ours, theirs = StateLock(path), FileLock(path)
    ours.acquire(timeout=1)
    with pytest.raises(Timeout):
        theirs.acquire(timeout=0.1)
    ours.release()
    theirs.acquire(timeout=1)
    with pytest.raises(LockTimeout):
        ours.acquire(timeout=0.1)
    theirs.release()
    ours.acquire(timeout=0)
    ours.release()


def test_another_process_waits_until_the_holder_lets_go(tmp_path: Path) -> None:
    path = tmp_path / "r1.lock"
    proc, stop = _holder(path)
    lock = StateLock(str(path))
    started = time.monotonic()
    with pytest.raises(LockTimeout):
        lock.acquire(timeout=0.2)
    assert time.monotonic() - started >= 0.2
    stop.set()
    proc.join(10)
    lock.acquire(timeout=5)
    lock.release()


def test_a_dead_holder_releases_the_lock(tmp_path: Path) -> None:
    path = tmp_path / "r1.lock"
    proc, _ = _holder(path, die=True)
    proc.join(10)
    lock = StateLock(str(path))
    lock.acquire(timeout=0)  # at once
    lock.release()
    assert path.exists()  # the lock file is kept


def test_a_thread_may_nest_it_and_other_threads_wait(tmp_path: Path) -> None:
    lock = StateLock(str(tmp_path / "r1.lock"))
    lock.acquire(timeout=1)
    lock.acquire(timeout=1)  # reentrant within this thread
    outcome: list[str] = []

    def other(timeout: float) -> None:
        try:
            lock.acquire(timeout=timeout)
        except LockTimeout:
            outcome.append("timeout")
        else:
            outcome.append("acquired")
            lock.release()

    thread = threading.Thread(target=other, args=(0.1,))
    thread.start()
    thread.join(10)
    lock.release()  # still held: once more to go
    thread = threading.Thread(target=other, args=(0.1,))
    thread.start()
    thread.join(10)
    lock.release()
    thread = threading.Thread(target=other, args=(1,))
    thread.start()
    thread.join(10)
    assert outcome == ["timeout", "timeout", "acquired"]


def test_the_lock_file_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        lock = StateLock(str(tmp_path / "r1.lock"))
        lock.acquire(timeout=1)
        lock.release()
    finally:
        os.umask(old)
    assert (tmp_path / "r1.lock").stat().st_mode & 0o777 == 0o600


def test_a_lock_held_too_long_is_a_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = FileStore(tmp_path / "state")
    store.secret_key()  # the state directory exists
    proc, stop = _holder(tmp_path / "state" / "locks" / "r1.lock")
    monkeypatch.setattr(file_store, "LOCK_TIMEOUT_SECONDS", 0.2)
    try:
        with pytest.raises(ConflictError, match="run r1 is busy"), store.lock("r1"):
            pass
    finally:
        stop.set()
        proc.join(10)
    with store.lock("r1"):
        pass
