"""The Store contract for runs (wfrun/store/abc.py): create, load and save with revisions and
the history events of each change, reload, deferred and "started" saves, damaged runs, listing
ids, deleting. Run unchanged against every store (tests/store/conftest.py); what only one store
does is tested in its own module (test_file_store.py, test_postgres_store.py).

Other parts of the contract: test_claims_contract.py (locks, claims, leases),
test_queries_contract.py (due, find_runs, pending), test_records_contract.py (history, logs,
the URL key, the manifest cache), test_token_contract.py, test_schedule_state.py.
"""

from __future__ import annotations

from collections.abc import Callable

import _stores
import pytest

from wfrun.errors import ConflictError, LeftoverRecords, NotFoundError, StateError, UsageError
from wfrun.model import PAUSE_EVENT, PAUSE_SUSPEND, RUNNING, SUSPENDED, Run, StepState
from wfrun.store.abc import Durability, Store

from ._runs import make_run


def test_create_then_load_returns_the_same_run(store: Store) -> None:
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    store.create(run)
    assert run.revision == 1
    loaded = store.load("r1")
    assert loaded.to_dict() == run.to_dict()


@pytest.mark.parametrize("falsy", [False, 0, 0.0, "", [], {}, None])
def test_every_value_of_a_step_reads_back_with_its_type(
    open_store: Callable[[], Store], falsy: object
) -> None:
    """Snapshots leave out what a step has not set; a set value that looks empty is kept."""
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    done = run.steps["b"] = StepState(status="completed", runs=1, output=falsy, action="",
                                      resume_data=falsy, context=falsy, answers=[falsy])
    open_store().create(run)
    again = open_store().load("r1").steps["b"]
    for name in ("output", "action", "resume_data", "context", "answers", "runs", "status"):
        kept, read = getattr(done, name), getattr(again, name)
        assert read == kept and type(read) is type(kept), name
    assert again.__dict__ == done.__dict__


def test_inbox_event_waits_and_approvals_read_back_as_saved(
        open_store: Callable[[], Store]) -> None:
    """What the triggers and gates keep in a run (SPEC §2, §3): the inbox (an early resume and
    events nobody waits for yet, in order), an event wait, and an N-of-M gate's decisions."""
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    run.steps["a"].pause = {  # N of M approvers, one decision so far
        "kind": PAUSE_SUSPEND, "since": run.created_at, "due_at": "2026-01-02T00:00:00.000Z",
        "on_timeout": "cancel", "nonce": "n",
        "approvals": {"required": 2, "approvers": ["alice", "bob", "carol"],
                      "decisions": [{"by": "alice", "action": "approved", "data": {"c": "ok"},
                                     "at": run.created_at, "source": "cli"}]}}
    run.steps["w"] = StepState(status=SUSPENDED, runs=1, pause={
        "kind": PAUSE_EVENT, "since": run.created_at, "due_at": "2026-01-03T00:00:00.000Z",
        "on_timeout": "cancel", "nonce": "m", "event": "payment-received",
        "schema": {"type": "object"}})
    run.steps["x"] = StepState(status=RUNNING, runs=1, exec_nonce="e1")
    run.inbox = [
        {"kind": "resume", "step": "x", "nonce": "e1", "data": {"n": 1}, "action": None,
         "request": {"source": "http", "headers": {}}, "at": run.created_at},
        {"kind": "event", "name": "shipped", "data": [1, 2], "at": run.created_at,
         "source": "cli"},
        {"kind": "event", "name": "shipped", "data": [3], "at": run.updated_at, "source": "http"},
    ]
    open_store().create(run)
    again = open_store().load("r1")
    assert again.to_dict() == run.to_dict()
    again.inbox = again.inbox[1:]  # the early resume applied: consumed in a save
    store = open_store()
    store.save(again)
    assert [e.get("data") for e in open_store().load("r1").inbox] == [[1, 2], [3]]


def test_create_refuses_an_existing_id(store: Store) -> None:
    store.create(make_run("r1"))
    with pytest.raises(ConflictError):
        store.create(make_run("r1"))


def test_create_refuses_an_id_whose_history_or_logs_outlived_its_state(
    store: Store, open_store: Callable[[], Store], backend: _stores.Backend
) -> None:
    """A run whose state was removed by hand leaves its history and logs: a new run of that
    id must not take them as its own, and nothing is written."""
    store.create(make_run("r1"), [{"type": "started", "n": 1}])
    store.append_log("r1", [{"text": "old"}])
    backend.remove_state("r1")
    reader = open_store()
    with pytest.raises(LeftoverRecords, match="r1") as refused:
        reader.create(make_run("r1"), [{"type": "started", "n": 2}])
    assert isinstance(refused.value, ConflictError)
    assert not reader.exists("r1")
    assert reader.read_history("r1") == [{"type": "started", "n": 1}]
    assert [r["text"] for r in reader.read_logs("r1")[0]] == ["old"]
    with pytest.raises(ConflictError) as plain:  # an existing run: not that
        store.create(make_run("r2"))
        store.create(make_run("r2"))
    assert not isinstance(plain.value, LeftoverRecords)


def test_load_of_unknown_run_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError):
        store.load("nope")


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "x" * 65, "a\x00b", "ｒｕｎ"])
def test_invalid_run_ids_are_refused_before_any_storage_access(store: Store, bad: str) -> None:
    with pytest.raises(UsageError):
        store.load(bad)
    with pytest.raises(UsageError):
        store.lock(bad)


def test_save_increments_revision_and_persists(store: Store) -> None:
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    run = store.load("r1")
    run.steps["a"].output = {"x": 1}
    store.save(run)
    assert run.revision == 2
    assert store.load("r1").steps["a"].output == {"x": 1}


def test_save_with_a_stale_revision_conflicts_and_writes_nothing(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    mine = store.load("r1")
    elsewhere = open_store()
    other = elsewhere.load("r1")
    other.steps["a"].output = "theirs"
    elsewhere.save(other)
    mine.steps["a"].output = "mine"
    with pytest.raises(ConflictError):
        store.save(mine)
    assert store.load("r1").steps["a"].output == "theirs"


def test_the_events_of_a_change_are_kept_with_it_and_a_refused_change_keeps_none(
    store: Store, open_store: Callable[[], Store]
) -> None:
    def kept() -> list[str]:
        return [e["type"] for e in open_store().read_history("r1")]

    run = make_run("r1")
    store.create(run, [{"type": "started", "at": run.created_at}])
    store.append_history("r1", [{"type": "log"}])  # an event of no state change
    run.output = "one"
    store.save(run, [{"type": "step_completed"}, {"type": "suspended"}])
    assert kept() == ["started", "log", "step_completed", "suspended"]
    stale = open_store().load("r1")
    stale.revision -= 1
    with pytest.raises(ConflictError):
        store.save(stale, [{"type": "refused"}])
    with pytest.raises(ConflictError):
        store.create(make_run("r1"), [{"type": "created again"}])
    assert kept() == ["started", "log", "step_completed", "suspended"]
    claim = store.claim("r1")
    assert claim is not None
    try:
        with store.batch():
            run.output = "two"
            store.save(run, [{"type": "step_started"}], durability=Durability.STEP_START)
            run.output = "three"
            store.save(run, [{"type": "completed"}], durability=Durability.BATCH)
    finally:
        claim.release()
    assert kept()[-2:] == ["step_started", "completed"]
    assert open_store().load("r1").output == "three"


def test_a_step_start_is_loaded_until_a_save_supersedes_it(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    stale = open_store().load("r1")
    claim = store.claim("r1")
    assert claim is not None
    try:
        run = store.load("r1")
        run.steps["a"].status, run.steps["a"].runs = RUNNING, 1
        store.save(run, durability=Durability.STEP_START)
        assert run.revision == 2
        seen = open_store().load("r1")  # what every other process sees while the step runs
        assert (seen.revision, seen.steps["a"].status, seen.steps["a"].runs) == (2, RUNNING, 1)
        stale.steps["a"].output = "stale"
        with pytest.raises(ConflictError):
            open_store().save(stale)
        run.steps["a"].output = "done"
        store.save(run)
        assert run.revision == 3
        final = open_store().load("r1")
        assert (final.revision, final.steps["a"].output) == (3, "done")
    finally:
        claim.release()


def test_a_known_state_is_kept_while_nothing_changed_and_what_did_is_read(
    open_store: Callable[[], Store],
) -> None:
    mine, other = open_store(), open_store()
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    mine.create(run)
    assert mine.load("r1", known=run) is run  # nothing saved since: the object is the state
    theirs = other.load("r1")
    theirs.output = "changed elsewhere"
    other.save(theirs)
    fresh = mine.load("r1", known=run)
    assert fresh is not run and fresh.revision == 2 and fresh.output == "changed elsewhere"


def test_a_batch_adopts_the_runs_of_a_worker_that_died_with_its_batch_open(
    open_store: Callable[[], Store],
) -> None:
    worker, parent = open_store(), open_store()
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    worker.create(run)
    worker.batch().__enter__()  # then the worker dies: its batch never closes
    run.output = "done"
    worker.save(run, [{"type": "completed"}], durability=Durability.BATCH)
    with parent.batch() as batch:
        batch.adopt(["r1"])
        batch.adopt([])
    assert parent.load("r1").output == "done"
    assert parent.read_history("r1")[-1]["type"] == "completed"


def test_saves_for_a_batch_are_visible_at_once_and_checked_as_any_save(
    open_store: Callable[[], Store],
) -> None:
    store, reader = open_store(), open_store()
    runs = [make_run(f"r{i}", "2026-01-02T00:00:00.000Z") for i in range(3)]
    for run in runs:
        store.create(run)
    with store.batch():
        with store.batch():
            pass  # batches do not nest: closing the inner one leaves the outer open
        for run in runs:
            run.output = run.run_id
            store.save(run, [{"type": run.run_id}], durability=Durability.BATCH)
        assert [reader.load(r.run_id).output for r in runs] == ["r0", "r1", "r2"]
        runs[0].output = "again"
        store.save(runs[0], durability=Durability.BATCH)  # twice in a batch: revisions in order
        stale = reader.load("r1")
        stale.revision -= 1
        with pytest.raises(ConflictError):
            store.save(stale, durability=Durability.BATCH)  # checked as any save
    assert reader.load("r0").output == "again" and reader.load("r0").revision == 3
    assert [e["type"] for e in reader.read_history("r1")] == ["r1"]
    runs[2].output = "outside"
    store.save(runs[2], durability=Durability.BATCH)  # outside a batch: a save like any other
    assert reader.load("r2").output == "outside"


def test_a_damaged_run_is_reported_untouched_and_others_still_listed(
    store: Store, open_store: Callable[[], Store], backend: _stores.Backend
) -> None:
    store.create(make_run("good", "2026-01-02T00:00:00.000Z"))
    store.create(make_run("bad"))
    backend.corrupt("bad")
    damaged = backend.stored("bad")
    with pytest.raises(StateError, match="bad"):
        open_store().load("bad")
    assert backend.stored("bad") == damaged
    items = list(open_store().iter_runs())
    assert [r.run_id for r in items if isinstance(r, Run)] == ["good"]
    assert [str(r) for r in items if isinstance(r, StateError)] == [
        str(e) for e in [_error_of(open_store, "bad")]]
    assert open_store().load("good").status == SUSPENDED
    runs, problems = open_store().check()
    assert runs == 2 and [p["kind"] for p in problems] == ["snapshot"]
    assert backend.stored("bad") == damaged


def _error_of(open_store: Callable[[], Store], run_id: str) -> StateError:
    try:
        open_store().load(run_id)
    except StateError as exc:
        return exc
    raise AssertionError(f"{run_id} loaded")


def test_run_ids_lists_stored_runs_by_prefix_sorted(store: Store) -> None:
    assert store.run_ids() == []  # nothing stored yet (and nothing created by asking)
    for run_id in ("b-1", "a-2", "a-1"):
        store.create(make_run(run_id))
        store.save(store.load(run_id))  # a second version: spare files are not runs
    store.append_history("a-1", [{"type": "a"}])
    assert store.run_ids() == ["a-1", "a-2", "b-1"]
    assert store.run_ids("a-") == ["a-1", "a-2"]
    assert store.run_ids("c") == []


def test_delete_removes_a_finished_run_and_all_kept_for_it(
    store: Store, open_store: Callable[[], Store]
) -> None:
    for run_id in ("done", "other"):
        run = make_run(run_id)
        store.create(run)
        run.status, run.running_since = "completed", None
        store.save(run)
        store.append_history(run_id, [{"type": "completed"}])
        store.append_log(run_id, [{"text": "hi"}])
    store.delete("done")
    for reader in (store, open_store()):
        with pytest.raises(NotFoundError):
            reader.load("done")
        assert reader.run_ids() == ["other"] and not reader.exists("done")
        assert reader.read_history("done") == [] and reader.read_logs("done")[0] == []
        assert reader.read_history("other") != []
    with pytest.raises(NotFoundError):
        store.delete("done")
    again = make_run("done")  # the id can be used again
    store.create(again)
    assert store.load("done").status == RUNNING


def test_delete_refuses_a_run_that_is_not_finished_or_is_claimed(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("open", "2026-01-02T00:00:00.000Z"))
    with pytest.raises(ConflictError, match="suspended"):
        store.delete("open")
    run = make_run("busy")
    store.create(run)
    run.status, run.running_since = "failed", None
    store.save(run)
    claim = store.claim("busy")
    assert claim is not None
    try:
        with pytest.raises(ConflictError, match="busy"):
            open_store().delete("busy")  # as another process would
    finally:
        claim.release()
    assert store.load("open").status == SUSPENDED and store.load("busy").status == "failed"
