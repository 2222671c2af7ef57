"""The Store contract for who may change and who executes a run: the state lock (reentrant in a
thread, exclusive across threads and processes), execution claims as leases with fencing
tokens (exclusive, released, taken over once their holder goes away, the old holder then
refused), acquiring due runs, and waiting for work. Run unchanged against every store
(conftest.py); how a holder goes away is the backend's (`Backend.hold`): its lease expires on
a store with leases, its process is killed on the file store, whose claims are flocks.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import nullcontext

import _stores
import pytest

from wfrun.errors import ConflictError, UsageError
from wfrun.store.abc import Durability, Store

from ._runs import make_run


def newer(token: int, than: int) -> bool:
    """True if a claim's fencing token is greater than an earlier claim's of the run (every
    store issues them, the file store's flocks included)."""
    return token > than > 0


def test_the_state_lock_is_reentrant_in_a_thread_and_excludes_other_threads(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    order: list[str] = []
    waiting = threading.Event()

    def other(lock_with: Store) -> None:
        waiting.set()
        with lock_with.lock("r1"):
            order.append("other")

    with store.lock("r1"):
        with store.lock("r1"):  # reentrant: the same thread takes it again at once
            order.append("mine")
        threads = [threading.Thread(target=other, args=(s,)) for s in (store, open_store())]
        for thread in threads:  # the same store object in another thread, and another object
            thread.start()
        assert waiting.wait(5)
        for thread in threads:
            thread.join(0.2)
        assert [t.is_alive() for t in threads] == [True, True] and order == ["mine"]
        order.append("mine, still")
    for thread in threads:
        thread.join(10)
    assert order == ["mine", "mine, still", "other", "other"]


def test_read_modify_writes_under_the_lock_never_conflict(open_store: Callable[[], Store]) -> None:
    """Two writers (store objects of their own, as two processes) each add 1 to the output ten
    times, each time loading and saving under the lock: every increment lands."""
    run = make_run("r1")
    run.output = 0
    open_store().create(run)
    failures: list[BaseException] = []

    def add(store: Store) -> None:
        try:
            for _ in range(10):
                with store.lock("r1"):
                    current = store.load("r1")
                    current.output += 1
                    store.save(current)
        except BaseException as exc:  # reported below, with the final count
            failures.append(exc)

    threads = [threading.Thread(target=add, args=(open_store(),)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    final = open_store().load("r1")
    assert (failures, final.output, final.revision) == ([], 20, 21)


def test_a_claim_excludes_every_other_until_released(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    store.create(make_run("r2"))
    other = open_store()
    assert not store.is_claimed("r1")
    claim = store.claim("r1")
    assert claim is not None and claim.run_id == "r1" and not claim.lost
    assert store.claim("r1") is None and other.claim("r1") is None  # this process, or another
    assert store.is_claimed("r1") and other.is_claimed("r1") and not other.is_claimed("r2")
    assert claim.renew() and not claim.lost  # a live holder keeps its lease
    beside = other.claim("r2")  # claims are per run
    assert beside is not None
    claim.release()
    claim.release()  # idempotent
    assert not store.is_claimed("r1") and not other.is_claimed("r1")
    again = other.claim("r1")
    assert again is not None and newer(again.token, claim.token)
    again.release()
    beside.release()
    with pytest.raises(UsageError):
        store.claim("../x")


def test_a_holder_that_goes_away_is_taken_over_and_can_no_longer_save(
    backend: _stores.Backend, store: Store
) -> None:
    store.create(make_run("r1"))
    holder = backend.hold("r1")  # another process claims the run
    try:
        assert store.is_claimed("r1") and store.claim("r1") is None
        holder.save_output("by the holder")  # its saves go through while it holds the claim
        holder.go_away()
        assert _stores.wait_until(lambda: not store.is_claimed("r1"), 10)
        claim = store.claim("r1")
        assert claim is not None and newer(claim.token, holder.token)
        # what the old holder still tries is refused (if it still exists at all), and
        # changes nothing
        assert holder.after_takeover() in ("refused", "gone")
        run = store.load("r1")
        assert (run.output, run.revision) == ("by the holder", 2)
        run.output = "by the new holder"
        store.save(run)  # the new holder's saves go through
        claim.release()
        assert store.load("r1").output == "by the new holder" and not store.is_claimed("r1")
    finally:
        holder.close()


def test_acquire_due_claims_the_due_runs_in_due_order_skipping_held_ones(
    store: Store, open_store: Callable[[], Store]
) -> None:
    for run_id, due in (("third", "2026-01-04T00:00:00.000Z"),
                        ("first", "2026-01-02T00:00:00.000Z"),
                        ("held", "2026-01-02T12:00:00.000Z"),
                        ("second", "2026-01-03T00:00:00.000Z"),
                        ("later", "2027-01-01T00:00:00.000Z")):
        store.create(make_run(run_id, due))
    other = open_store()
    held = other.claim("held")  # another process executes it
    assert held is not None
    now = "2026-06-01T00:00:00.000Z"
    claims = store.acquire_due(now, limit=2)
    assert [c.run_id for c in claims] == ["first", "second"]
    assert other.claim("first") is None and other.is_claimed("second")
    rest = open_store().acquire_due(now)  # another process: the rest, what is held skipped
    assert [c.run_id for c in rest] == ["third"]
    for claim in [*claims, *rest, held]:
        claim.release()
    again = store.acquire_due("2026-01-03T00:00:00.000Z")
    assert [c.run_id for c in again] == ["first", "held", "second"]
    for claim in again:
        claim.release()


def test_wait_for_work_returns_once_stopped_or_after_the_timeout(store: Store) -> None:
    stop = threading.Event()
    started = time.monotonic()
    store.wait_for_work(0.05, stop)  # nothing happens: it waits about that long
    assert time.monotonic() - started >= 0.04
    stop.set()
    started = time.monotonic()
    store.wait_for_work(30, stop)  # stopped already: it returns at once
    assert time.monotonic() - started < 5


def test_a_save_with_release_gives_the_claim_up_before_the_lock(
    store: Store, open_store: Callable[[], Store]
) -> None:
    for run_id, in_batch in (("r1", False), ("r2", True)):
        store.create(make_run(run_id), [{"type": "started"}])
        other = open_store()  # as another process
        claim = store.claim(run_id)
        assert claim is not None
        with store.batch() if in_batch else nullcontext(), store.lock(run_id):
            run = store.load(run_id)
            run.output = "done"
            store.save(run, [{"type": "step_completed"}], durability=Durability.BATCH,
                       release=claim)
            assert run.revision == 2
            # released with the save, while the state lock is still held: whoever changes
            # the run after this save can claim it
            assert not other.is_claimed(run_id)
            taken = other.claim(run_id)
            assert taken is not None and newer(taken.token, claim.token)
        claim.release()  # does nothing more: the new holder keeps its claim
        assert store.is_claimed(run_id) and store.claim(run_id) is None and not taken.lost
        taken.release()
        saved = other.load(run_id)
        assert (saved.output, saved.revision) == ("done", 2)
        assert [e["type"] for e in other.read_history(run_id)] == ["started", "step_completed"]
        assert not store.is_claimed(run_id)


def test_a_refused_save_with_release_writes_nothing_and_keeps_the_claim(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"), [{"type": "started"}])
    other = open_store()
    claim = store.claim("r1")
    assert claim is not None
    stale = store.load("r1")
    with other.lock("r1"):  # changed meanwhile under the lock, without the claim (a cancel)
        theirs = other.load("r1")
        theirs.output = "theirs"
        other.save(theirs, [{"type": "cancelled"}])
    with store.lock("r1"):
        stale.output = "mine"
        with pytest.raises(ConflictError, match="r1"):
            store.save(stale, [{"type": "step_completed"}], release=claim)
    assert store.is_claimed("r1") and other.claim("r1") is None  # still held
    assert not claim.lost
    assert other.load("r1").output == "theirs"
    assert [e["type"] for e in other.read_history("r1")] == ["started", "cancelled"]
    claim.release()
    assert not store.is_claimed("r1")


def test_a_claim_hands_over_the_run_it_read_once_and_a_stale_one_is_refused(
    store: Store, open_store: Callable[[], Store]
) -> None:
    for run_id in ("r1", "r2"):
        store.create(make_run(run_id, "2026-01-02T00:00:00.000Z"))
    claims = {c.run_id: c for c in store.acquire_due("2026-06-01T00:00:00.000Z")}
    assert sorted(claims) == ["r1", "r2"]
    other = open_store()
    with other.lock("r2"):  # r2 changes after it was acquired, under the lock (a resume)
        changed = other.load("r2")
        changed.output = "resumed"
        other.save(changed)
    taken = {run_id: claim.take_run() for run_id, claim in claims.items()}
    assert [claim.take_run() for claim in claims.values()] == [None, None]  # handed over once
    try:
        if taken["r1"] is None:  # this store reads no run with a claim: the caller loads it
            assert taken["r2"] is None
            return
        assert taken["r1"].to_dict() == store.load("r1").to_dict()
        assert taken["r1"].revision == 1
        stale = taken["r2"]
        assert stale is not None and (stale.output, stale.revision) == (None, 1)
        with store.lock("r2"):
            current = store.load("r2", known=stale)  # the stored state, not the stale one
            assert (current.output, current.revision) == ("resumed", 2)
            stale.output = "stale"
            with pytest.raises(ConflictError, match="r2"):
                store.save(stale)
        assert store.load("r2").output == "resumed" and store.is_claimed("r2")
    finally:
        for claim in claims.values():
            claim.release()
    assert not store.is_claimed("r1") and not store.is_claimed("r2")
