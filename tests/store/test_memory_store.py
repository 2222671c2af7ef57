"""What only the memory store does beyond the Store contract (test_*_contract.py): leases that
a live holder keeps and one that stopped renewing loses by the clock, store objects that share
one backing, waking waiters when a due time changes, its lock's timeout, refusing to be
shared with a forked process, and `check` noting history and logs whose run's row is gone."""

from __future__ import annotations

import threading
import time

import pytest

from wfrun.clock import FakeClock
from wfrun.errors import TAKEN_OVER, ClaimLost, ConflictError, StateError
from wfrun.store.memory import MemoryBacking, MemoryStore

from ._runs import make_run


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock("2026-01-01T00:00:00Z")


@pytest.fixture
def store(clock: FakeClock) -> MemoryStore:
    return MemoryStore(clock=clock, lease_seconds=30)


def test_a_live_holder_keeps_its_lease_however_long_it_executes(
        store: MemoryStore, clock: FakeClock) -> None:
    store.create(make_run("r1"))
    claim = store.claim("r1")
    assert claim is not None
    clock.advance("1d")  # renewed all along, as a renewal thread would
    other = MemoryStore(store)
    assert other.is_claimed("r1") and other.claim("r1") is None and not claim.lost
    claim.release()


def test_a_holder_that_stops_renewing_loses_its_lease_when_it_runs_out(
        store: MemoryStore, clock: FakeClock) -> None:
    store.create(make_run("r1"))
    claim = store.claim("r1")
    assert claim is not None
    store.stop_renewing()
    other = MemoryStore(store)
    clock.advance("29s")
    assert other.is_claimed("r1")
    assert claim.renew()  # renewed by hand: 30 s from now
    clock.advance("29s")
    assert other.is_claimed("r1")
    clock.advance("1s")
    assert not other.is_claimed("r1")
    # run out, but nobody took it over: the holder's save still goes through, and a renewal
    # makes the lease its own again
    run = store.load("r1")
    store.save(run)
    assert claim.renew() and other.is_claimed("r1") and not claim.lost
    clock.advance("30s")
    taken = other.claim("r1")
    assert taken is not None and taken.token > claim.token
    assert claim.lost and not claim.renew()
    stale = store.load("r1")
    stale.output = "stale"
    with pytest.raises(ConflictError, match="lost its lease"):
        store.save(stale)
    assert store.load("r1").output is None
    claim.release()  # releasing a lost claim leaves the new holder's alone
    assert other.is_claimed("r1")
    taken.release()
    store.save(stale)  # no claim held any more: a save under the lock is a plain save
    assert store.load("r1").output == "stale"


def test_store_objects_share_a_backing_and_nothing_else(clock: FakeClock) -> None:
    backing = MemoryBacking(clock, lease_seconds=5)
    one, two = MemoryStore(backing), MemoryStore(backing)
    three = MemoryStore(one)
    one.create(make_run("r1"))
    assert two.load("r1").revision == three.load("r1").revision == 1
    assert three.lease_seconds == 5 and three.backing is backing
    assert MemoryStore().run_ids() == []  # a store of its own
    with pytest.raises(ValueError):
        MemoryStore(one, clock=clock)


def test_wait_for_work_wakes_when_another_store_object_sets_a_due_time(
        store: MemoryStore) -> None:
    other = MemoryStore(store)
    woke = threading.Event()

    def waiter() -> None:
        store.wait_for_work(30, threading.Event())
        woke.set()

    thread = threading.Thread(target=waiter)
    thread.start()
    time.sleep(0.05)
    assert not woke.is_set()
    other.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    assert woke.wait(5)
    thread.join(5)


def test_the_state_lock_times_out_with_a_conflict(clock: FakeClock) -> None:
    backing = MemoryBacking(clock, lock_timeout=0.05)
    one, two = MemoryStore(backing), MemoryStore(backing)
    one.create(make_run("r1"))
    # another object is another process, even in this thread
    with one.lock("r1"), pytest.raises(ConflictError, match="r1 is busy"), two.lock("r1"):
        pass
    with two.lock("r1"):
        pass


@pytest.mark.parametrize("damage", ["{", "[]", '{"run_id": "r1"}'])
def test_any_damage_to_a_stored_run_is_a_state_error(store: MemoryStore, damage: str) -> None:
    store.create(make_run("r1"))
    store.backing.runs["r1"].snapshot = damage
    with pytest.raises(StateError, match="memory store run r1"):
        store.load("r1")
    assert store.backing.runs["r1"].snapshot == damage


def test_check_notes_the_history_and_logs_of_a_row_removed_by_hand(store: MemoryStore) -> None:
    for run_id in ("r1", "r2", "r3"):
        store.create(make_run(run_id), [{"type": "started"}])
    store.append_log("r2", [{"text": "hi"}])
    del store.backing.runs["r2"], store.backing.runs["r3"]  # a hand edit
    runs, found = store.check()
    assert runs == 1
    assert [(p["kind"], p["path"], p["severity"]) for p in found] == [
        ("orphan", "memory store run r2", "note"), ("orphan", "memory store run r3", "note")]
    assert "history or logs of run r2 are kept" in found[0]["reason"]


def test_it_is_not_shared_with_forked_processes(store: MemoryStore) -> None:
    assert not store.multiprocess  # a tick forks no workers over it


def test_a_lost_lease_is_said_as_a_fact_and_the_command_adds_how_to_see_the_run(
        store: MemoryStore, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.cli import _settings

    store.create(make_run("r1"))
    assert store.claim("r1") is not None
    store.stop_renewing()
    clock.advance("31s")
    assert MemoryStore(store).claim("r1") is not None  # another "process" takes it over
    with pytest.raises(ClaimLost) as raised:
        store.save(store.load("r1"))
    message = raised.value.message
    found = TAKEN_OVER.search(message)
    assert found is not None and found[1] == "r1" and "show" not in message
    monkeypatch.setattr(_settings, "_current", _settings.Settings("/srv/state", "workflows", True))
    assert _settings.with_hint(message) == f"{message} (wfrun --state-dir /srv/state show r1)"
