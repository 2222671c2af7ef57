"""The query part of the Store contract: the due index (`due`, `reindex`: what `tick` asks)
and `find_runs`, `pending` (what `wfrun list`, `pending` and `prune` ask), run against every
store (conftest.py), and against the Store's own default queries over `iter_runs` (what a
store without an index inherits)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import _stores
import pytest

from wfrun.clock import FakeClock
from wfrun.errors import StateError, UsageError
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    PAUSE_SUSPEND,
    RUN_STATUSES,
    RUNNING,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)
from wfrun.store.abc import Store
from wfrun.store.memory import MemoryStore
from wfrun.store.queries import RunPage, RunSummary

from ._runs import listed, make_run, run_of


class DefaultQueries(MemoryStore):
    """A memory store that answers queries with the Store defaults (reading every run)."""

    find_runs = Store.find_runs
    pending = Store.pending


class DefaultBackend(_stores.MemoryBackend):
    kind = "iter_runs"

    def open(self) -> Store:
        return DefaultQueries(self.backing)


@pytest.fixture(params=[*_stores.KINDS, "iter_runs"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_stores.Backend]:
    """Every store's storage, and a memory store's read through the default queries."""
    if request.param == "iter_runs":
        yield DefaultBackend(FakeClock(_stores.START))
        return
    with _stores.backend(request.param, tmp_path) as made:
        yield made


def ids(page: RunPage) -> list[str]:
    return [r.run_id for r in page.runs]


def test_an_empty_store_finds_nothing(store: Store) -> None:
    page = store.find_runs()
    assert (page.runs, page.more, page.problems) == ([], 0, [])
    assert store.pending() == ([], [])


def test_runs_come_newest_first_top_level_only_unless_asked(store: Store) -> None:
    store.create(run_of("old", COMPLETED, day=1))
    store.create(run_of("new", SUSPENDED, day=3))
    store.create(run_of("mid-b", RUNNING, day=2))
    store.create(run_of("mid-a", COMPLETED, day=2))  # same creation time: by id, descending
    store.create(run_of("child", COMPLETED, day=4, parent="new"))
    assert ids(store.find_runs()) == ["new", "mid-b", "mid-a", "old"]
    assert ids(store.find_runs(top_level=False)) == ["child", "new", "mid-b", "mid-a", "old"]
    runs, more, problems = store.find_runs(limit=2)  # unpacks
    assert [r.run_id for r in runs] == ["new", "mid-b"] and more == 2 and problems == []


def test_a_summary_says_what_list_shows(store: Store) -> None:
    store.create(run_of("waits", SUSPENDED, day=2))
    store.create(run_of("done", COMPLETED, day=1))
    store.create(run_of("kid", WAITING, day=3, parent="waits"))
    found = {r.run_id: r for r in store.find_runs(top_level=False).runs}
    assert found["waits"] == RunSummary(
        "waits", "wf", SUSPENDED, "2026-01-02T00:00:00.000Z", "2026-01-02T00:00:00.000Z",
        next_due="2026-02-01T00:00:00.000Z", parent=None)
    assert found["done"].next_due is None and found["done"].status == COMPLETED
    assert found["kid"].parent == "waits" and found["kid"].next_due == "2026-03-01T00:00:00.000Z"


def test_statuses_and_workflow_filter(store: Store) -> None:
    store.create(run_of("a", COMPLETED, day=1, workflow="alpha"))
    store.create(run_of("b", SUSPENDED, day=2, workflow="alpha"))
    store.create(run_of("c", SUSPENDED, day=3, workflow="beta"))
    store.create(run_of("d", CANCELLED, day=4, workflow="beta"))
    assert ids(store.find_runs(statuses=[SUSPENDED])) == ["c", "b"]
    assert ids(store.find_runs(statuses=[COMPLETED, CANCELLED])) == ["d", "a"]
    assert ids(store.find_runs(workflow="alpha")) == ["b", "a"]
    assert ids(store.find_runs(statuses=[SUSPENDED], workflow="beta")) == ["c"]
    assert ids(store.find_runs(statuses=["no-such-status"])) == []
    assert ids(store.find_runs(workflow="gamma")) == []
    page = store.find_runs(statuses=[SUSPENDED], limit=1)
    assert ids(page) == ["c"] and page.more == 1


def test_pages_follow_each_other_by_cursor(store: Store) -> None:
    made = []
    for day in range(1, 8):
        for second in range(3):
            run_id = f"r{day}-{second}"
            store.create(run_of(run_id, COMPLETED if second else SUSPENDED, day=day,
                                second=second))
            made.append(run_id)
    newest_first = ids(store.find_runs())
    assert sorted(newest_first) == sorted(made) and len(newest_first) == 21
    seen: list[str] = []
    before = None
    while True:
        page = store.find_runs(limit=4, before=before)
        seen.extend(ids(page))
        assert page.more == 21 - len(seen)
        if not page.runs:
            break
        before = page.runs[-1].cursor
    assert seen == newest_first
    suspended = store.find_runs(statuses=[SUSPENDED], limit=2)
    rest = store.find_runs(statuses=[SUSPENDED], before=suspended.runs[-1].cursor)
    assert ids(suspended) + ids(rest) == [f"r{d}-0" for d in range(7, 0, -1)]
    with pytest.raises(UsageError):
        store.find_runs(before="not a cursor")


def test_a_limit_of_zero_only_counts(store: Store) -> None:
    for i in range(5):
        store.create(run_of(f"r{i}", COMPLETED, day=i + 1))
    page = store.find_runs(limit=0)
    assert page.runs == [] and page.more == 5


def test_queries_see_what_other_store_objects_changed(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(run_of("r1", SUSPENDED, day=1))
    store.create(run_of("r2", SUSPENDED, day=2))
    reader = open_store()
    assert ids(reader.find_runs(statuses=[SUSPENDED])) == ["r2", "r1"]
    writer = open_store()
    with writer.lock("r1"):
        run = writer.load("r1")
        run.status, run.steps["a"] = COMPLETED, StepState(status=COMPLETED, runs=1)
        writer.save(run)
    for other in (reader, open_store()):
        assert ids(other.find_runs(statuses=[SUSPENDED])) == ["r2"]
        assert ids(other.find_runs(statuses=[COMPLETED])) == ["r1"]
        assert [r.run_id for r in other.pending()[0]] == ["r2"]
    writer.delete("r1")
    assert ids(reader.find_runs()) == ["r2"]
    assert ids(open_store().find_runs(statuses=[COMPLETED])) == []


def test_a_run_is_found_under_each_status_it_goes_through(store: Store) -> None:
    run = run_of("r1", RUNNING, day=1)
    store.create(run)
    for status in (SUSPENDED, WAITING, RUNNING, COMPLETED):
        changed = run_of("r1", status, day=1)
        changed.revision = run.revision
        store.save(changed)
        run = changed
        found = {s: ids(store.find_runs(statuses=[s])) for s in RUN_STATUSES}
        assert found == {s: (["r1"] if s == status else []) for s in RUN_STATUSES}, status


def test_pending_is_every_run_with_a_step_waiting_for_data(store: Store) -> None:
    store.create(run_of("asks", SUSPENDED, day=1, workflow="alpha"))
    store.create(run_of("child-asks", SUSPENDED, day=2, workflow="beta", parent="asks"))
    store.create(run_of("reruns", WAITING, day=3, workflow="alpha"))
    store.create(run_of("done", COMPLETED, day=4, workflow="alpha"))
    busy = run_of("busy", RUNNING, day=5, workflow="alpha")  # executing one step, another asks
    busy.steps["b"] = StepState(status=SUSPENDED, pause={
        "kind": PAUSE_SUSPEND, "since": busy.created_at, "due_at": None, "nonce": "n"})
    store.create(busy)
    each = run_of("each", SUSPENDED, day=6, workflow="beta")  # a foreach iteration asks
    each.steps["a"] = StepState(status=SUSPENDED, iterations=[
        StepState(status=COMPLETED), StepState(status=SUSPENDED, pause={
            "kind": PAUSE_SUSPEND, "since": each.created_at, "due_at": None, "nonce": "m"})])
    store.create(each)
    runs, problems = store.pending()
    assert sorted(r.run_id for r in runs) == ["asks", "busy", "child-asks", "each"]
    assert problems == []
    assert all(isinstance(r, Run) and r.steps for r in runs)  # whole runs: their steps too
    assert sorted(r.run_id for r in store.pending("beta")[0]) == ["child-asks", "each"]
    assert store.pending("gamma") == ([], [])


def _unreadable(backend: _stores.Backend, store: Store) -> Any:
    store.create(run_of("good", SUSPENDED, day=1))
    bad = make_run("bad")  # executing: how the backends damage a stored run
    bad.created_at = bad.updated_at = "2026-01-02T00:00:00.000Z"
    store.create(bad)
    backend.corrupt("bad")


def test_an_unreadable_run_is_reported_and_never_hides_the_others(
    backend: _stores.Backend, open_store: Callable[[], Store]
) -> None:
    store = open_store()
    _unreadable(backend, store)
    for reader in (store, open_store()):
        page = reader.find_runs()
        assert ids(page) == ["good"]
        assert len(page.problems) == 1 and isinstance(page.problems[0], StateError)
        assert "bad" in str(page.problems[0])
        assert ids(reader.find_runs(statuses=[SUSPENDED])) == ["good"]


def test_due_lists_only_runs_due_at_or_before_now_in_due_order(store: Store) -> None:
    store.create(make_run("late", "2026-01-03T00:00:00.000Z"))
    store.create(make_run("early", "2026-01-02T00:00:00.000Z"))
    store.create(make_run("future", "2027-01-01T00:00:00.000Z"))
    assert store.due("2026-01-01T12:00:00.000Z") == []
    assert store.due("2026-01-03T00:00:00.000Z") == ["early", "late"]
    assert store.due("2026-01-03T00:00:00.000Z", limit=1) == ["early"]


def test_due_follows_saves_and_finished_runs_leave_the_index(store: Store) -> None:
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    run = store.load("r1")
    run.steps["a"].pause = dict(run.steps["a"].pause or {}, due_at="2026-02-01T00:00:00.000Z")
    store.save(run)
    assert store.due("2026-01-15T00:00:00.000Z") == []
    assert store.due("2026-02-01T00:00:00.000Z") == ["r1"]
    run.status = "completed"
    store.save(run)
    assert store.due("2030-01-01T00:00:00.000Z") == []


def test_an_executing_run_is_due_at_once(store: Store) -> None:
    store.create(make_run("busy"))
    assert store.due("2026-01-01T00:00:00.000Z") == ["busy"]


def test_due_reads_no_snapshot(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(50):
        store.create(make_run(f"idle{i}", "2027-01-01T00:00:00.000Z"))
    store.create(make_run("soon", "2026-01-02T00:00:00.000Z"))

    def no_reads(*args: object, **kwargs: object) -> Run:
        raise AssertionError("due() must not read snapshots")

    monkeypatch.setattr(type(store), "load", no_reads)
    assert store.due("2026-06-01T00:00:00.000Z") == ["soon"]


def test_reindex_makes_the_due_index_agree_with_the_stored_run(store: Store) -> None:
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    with store.lock("r1"):
        store.reindex("r1")
    assert store.due("2026-01-02T00:00:00.000Z") == ["r1"]  # still due: its entry is kept
    run = store.load("r1")
    run.steps["a"].pause = None
    run.status = "completed"
    store.save(run)
    with store.lock("r1"):
        store.reindex("r1")
    assert store.due("2030-01-01T00:00:00.000Z") == []
    with store.lock("gone"):
        store.reindex("gone")  # no such run: nothing of it is indexed, and no error
    assert store.due("2030-01-01T00:00:00.000Z") == []


def test_find_runs_lists_newest_first_filters_and_pages(
    store: Store, open_store: Callable[[], Store]
) -> None:
    runs = [listed("a", "2026-01-01T00:00:00.000Z"),
            listed("b", "2026-01-03T00:00:00.000Z", status=SUSPENDED),
            listed("c", "2026-01-02T00:00:00.000Z", workflow="other"),
            listed("d", "2026-01-03T00:00:00.000Z", status="failed"),  # same time as b
            listed("kid", "2026-01-04T00:00:00.000Z", parent="b", status=SUSPENDED)]
    for run in runs:
        store.create(run)
    reader = open_store()
    page = reader.find_runs()
    assert [r.run_id for r in page.runs] == ["d", "b", "c", "a"]  # ties: run id, descending
    assert (page.more, page.problems) == (0, [])
    assert page.runs[1] == RunSummary.of(runs[1]) and page.runs[1].next_due is not None
    assert [r.run_id for r in reader.find_runs(top_level=False).runs] == ["kid", "d", "b", "c",
                                                                          "a"]
    assert [r.run_id for r in reader.find_runs([SUSPENDED]).runs] == ["b"]
    assert [r.run_id for r in reader.find_runs([SUSPENDED, "failed"], top_level=False).runs] \
        == ["kid", "d", "b"]
    assert [r.run_id for r in reader.find_runs(workflow="other").runs] == ["c"]
    assert reader.find_runs(["no-such-status"]).runs == []
    first = reader.find_runs(limit=2)
    assert ([r.run_id for r in first.runs], first.more) == (["d", "b"], 2)
    second = reader.find_runs(limit=2, before=first.runs[-1].cursor)
    assert ([r.run_id for r in second.runs], second.more) == (["c", "a"], 0)
    assert reader.find_runs(limit=0).more == 4
    # a save shows at once: the summary follows the run
    changed = reader.load("b")
    changed.status, changed.steps["a"].status, changed.steps["a"].pause = "cancelled", \
        "cancelled", None
    reader.save(changed)
    assert [r.run_id for r in open_store().find_runs([SUSPENDED]).runs] == []
    assert open_store().find_runs(["cancelled"]).runs[0].next_due is None


def test_pending_returns_every_run_waiting_for_data_children_included(
    store: Store, open_store: Callable[[], Store]
) -> None:
    for run in (listed("top", "2026-01-01T00:00:00.000Z", status=SUSPENDED),
                listed("kid", "2026-01-02T00:00:00.000Z", status=SUSPENDED, parent="x"),
                listed("else", "2026-01-02T00:00:00.000Z", status=SUSPENDED, workflow="other"),
                listed("done", "2026-01-02T00:00:00.000Z"),
                make_run("busy")):
        store.create(run)
    found, problems = open_store().pending()
    assert sorted(r.run_id for r in found) == ["else", "kid", "top"] and problems == []
    assert all(isinstance(r, Run) and r.revision == 1 for r in found)
    assert sorted(r.run_id for r in open_store().pending("wf")[0]) == ["kid", "top"]
    run = store.load("top")
    run.status, run.steps["a"].status, run.steps["a"].pause = "completed", "completed", None
    store.save(run)
    assert sorted(r.run_id for r in open_store().pending()[0]) == ["else", "kid"]
