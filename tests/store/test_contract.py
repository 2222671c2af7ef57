"""The Store contract (wfrun/store/abc.py), run unchanged against every implementation.

Each test states one promise of the interface; nothing here knows which store it runs on
(what only one store does is tested in its own module: test_file_store.py,
test_postgres_store.py). A backend opens store objects over one storage, as separate processes
would, and damages a stored run the way its store must detect.
"""

from __future__ import annotations

import datetime
import hashlib
import multiprocessing
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import _pg
import pytest

from wfrun.errors import ConflictError, NotFoundError, StateError, UsageError
from wfrun.model import PAUSE_EVENT, PAUSE_SUSPEND, RUNNING, SUSPENDED, Run, StepState
from wfrun.store.abc import RunSummary, Store


class Backend:
    """One storage under test."""

    def open(self) -> Store:
        """A new store object over the storage (as another process would open it)."""
        raise NotImplementedError

    def stored(self, run_id: str) -> bytes:
        """What is stored for the run's state, as stored."""
        raise NotImplementedError

    def corrupt(self, run_id: str) -> None:
        """Damage the run's stored state so that only the store's verification can tell."""
        raise NotImplementedError


class FileBackend(Backend):
    def __init__(self, root: Path) -> None:
        self.root = root

    def open(self) -> Store:
        from wfrun.store.file import FileStore

        return FileStore(self.root)

    def stored(self, run_id: str) -> bytes:
        return Path(self.open().describe(run_id)).read_bytes()

    def corrupt(self, run_id: str) -> None:
        path = Path(self.open().describe(run_id))
        raw = bytearray(path.read_bytes())
        index = raw.index(b'"wf"') + 2
        raw[index] = ord("x")  # still valid JSON: only the checksum can tell
        path.write_bytes(bytes(raw))


class PostgresBackend(Backend):
    def __init__(self, url: str) -> None:
        self.url = url

    def open(self) -> Store:
        from wfrun.store.postgres import PostgresStore

        return PostgresStore(self.url)

    def _sql(self, query: str, run_id: str) -> list[tuple[object, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, [run_id])
            return cur.fetchall() if cur.description else []

    def stored(self, run_id: str) -> bytes:
        rows = self._sql("SELECT snapshot::text FROM wfrun_runs WHERE run_id = %s", run_id)
        return str(rows[0][0]).encode()

    def corrupt(self, run_id: str) -> None:
        # a hand edit that leaves valid JSON: a status wfrun never writes
        self._sql("UPDATE wfrun_runs SET snapshot = replace(snapshot::text, "
                  "'\"status\": \"running\"', '\"status\": \"bogus\"')::json "
                  "WHERE run_id = %s", run_id)


@pytest.fixture(params=["file", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    if request.param == "postgres":
        with _pg.schema() as url:
            yield PostgresBackend(url)
    else:
        yield FileBackend(tmp_path / "state")


@pytest.fixture
def open_store(backend: Backend) -> Callable[[], Store]:
    """Opens a new store object over the same storage (as another process would)."""
    return backend.open


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    return open_store()


def wait_until(condition: Callable[[], bool], seconds: float = 5.0) -> bool:
    """True once `condition` holds (checked every 10 ms), False if it never did in time."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def make_run(run_id: str, due: str | None = None) -> Run:
    """A run suspended until `due` (or executing, when `due` is None)."""
    run = Run(run_id=run_id, workflow="wf", input={"n": 1}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", steps={"a": StepState()})
    if due is None:
        run.status = RUNNING
        run.running_since = "2026-01-01T00:00:00.000Z"
    else:
        run.status = SUSPENDED
        run.steps["a"].status = SUSPENDED
        run.steps["a"].pause = {"kind": PAUSE_SUSPEND, "since": run.created_at, "due_at": due,
                                "on_timeout": "cancel", "nonce": "n"}
    return run


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


def test_reindex_drops_stale_entries(store: Store) -> None:
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    run = store.load("r1")
    assert store.due("2026-01-02T00:00:00.000Z") == ["r1"]
    run.steps["a"].pause = None
    run.status = "completed"
    store.reindex(run)
    assert store.due("2030-01-01T00:00:00.000Z") == []


def _hold_claim(open_store: Callable[[], Store], run_id: str, ready: object,
                stop: object) -> None:
    held = open_store().claim(run_id)
    assert held is not None
    ready.set()  # type: ignore[attr-defined]
    stop.wait(10)  # type: ignore[attr-defined]


def test_claim_is_exclusive_and_dies_with_its_process(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    proc = ctx.Process(target=_hold_claim, args=(open_store, "r1", ready, stop))
    proc.start()
    assert ready.wait(10)
    assert store.is_claimed("r1") and open_store().is_claimed("r1")
    assert store.claim("r1") is None
    os.kill(proc.pid or 0, 9)
    proc.join(10)
    assert wait_until(lambda: not store.is_claimed("r1"))  # noticed as soon as it is gone
    claim = store.claim("r1")
    assert claim is not None
    assert open_store().claim("r1") is None  # exclusive within one process too
    claim.release()
    claim.release()  # idempotent
    assert not store.is_claimed("r1")
    again = open_store().claim("r1")
    assert again is not None
    again.release()


def test_history_appends_in_order(store: Store, open_store: Callable[[], Store]) -> None:
    store.create(make_run("r1"))
    store.append_history("r1", [{"type": "a"}, {"type": "b"}])
    store.append_history("r1", [{"type": "c"}])
    store.sync_history("r1")
    assert [e["type"] for e in store.read_history("r1")] == ["a", "b", "c"]
    assert [e["type"] for e in open_store().read_history("r1")] == ["a", "b", "c"]
    assert store.read_history("other") == []


def test_secret_key_is_stable_private_and_not_in_snapshots(
    store: Store, open_store: Callable[[], Store], backend: Backend
) -> None:
    key = store.secret_key()
    assert len(key) >= 32
    assert open_store().secret_key() == key
    store.create(make_run("r1"))
    assert key.hex().encode() not in backend.stored("r1") and key not in backend.stored("r1")


def test_a_damaged_run_is_reported_untouched_and_others_still_listed(
    store: Store, open_store: Callable[[], Store], backend: Backend
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
    other.sync_history("r1")
    newer, later = store.read_logs("r1", cursor)
    assert [r["text"] for r in newer] == ["c"]
    assert later > cursor
    assert [r["text"] for r in open_store().read_logs("r1")[0]] == ["a", "b", "c"]
    store.append_log("r2", [{"text": "other run"}])
    assert [r["text"] for r in store.read_logs("r1")[0]] == ["a", "b", "c"]  # kept per run


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


def test_logs_are_not_runs_and_invalid_ids_are_refused(store: Store) -> None:
    store.create(make_run("r1"))
    store.append_log("r1", [{"text": "a"}])
    assert [r.run_id for r in store.iter_runs() if isinstance(r, Run)] == ["r1"]
    assert store.check()[1] == []
    with pytest.raises(UsageError):
        store.append_log("../x", [{"text": "a"}])
    with pytest.raises(UsageError):
        store.read_logs("../x")


def test_save_started_is_loaded_until_a_save_supersedes_it(
    store: Store, open_store: Callable[[], Store]
) -> None:
    store.create(make_run("r1"))
    stale = open_store().load("r1")
    claim = store.claim("r1")
    assert claim is not None
    try:
        run = store.load("r1")
        run.steps["a"].status, run.steps["a"].runs = RUNNING, 1
        store.save_started(run)
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


def test_reload_keeps_the_object_while_nothing_changed_and_reads_what_did(
    open_store: Callable[[], Store],
) -> None:
    mine, other = open_store(), open_store()
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    mine.create(run)
    assert mine.reload(run) is run  # nothing saved since: the object is the state
    theirs = other.load("r1")
    theirs.output = "changed elsewhere"
    other.save(theirs)
    fresh = mine.reload(run)
    assert fresh is not run and fresh.revision == 2 and fresh.output == "changed elsewhere"


def test_make_durable_takes_runs_another_process_left_deferred(
    open_store: Callable[[], Store],
) -> None:
    worker, parent = open_store(), open_store()
    run = make_run("r1", "2026-01-02T00:00:00.000Z")
    worker.create(run)
    run.output = "done"
    worker.save_deferred(run)  # then the worker dies: its flush never comes
    worker.append_history("r1", [{"type": "completed"}])
    parent.make_durable(["r1"])
    parent.make_durable([])
    assert parent.load("r1").output == "done"
    assert parent.read_history("r1")[-1]["type"] == "completed"


def test_save_deferred_is_visible_at_once_and_durable_after_flush(
    open_store: Callable[[], Store],
) -> None:
    store, reader = open_store(), open_store()
    runs = [make_run(f"r{i}", "2026-01-02T00:00:00.000Z") for i in range(3)]
    for run in runs:
        store.create(run)
    for run in runs:
        run.output = run.run_id
        store.save_deferred(run)
    assert [reader.load(r.run_id).output for r in runs] == ["r0", "r1", "r2"]
    runs[0].output = "again"
    store.save_deferred(runs[0])  # a second deferred save of one run: revisions stay in order
    store.flush()
    store.flush()  # nothing left to do
    assert reader.load("r0").output == "again" and reader.load("r0").revision == 3
    stale = reader.load("r1")
    stale.revision -= 1
    with pytest.raises(ConflictError):
        store.save_deferred(stale)  # the revision check is the same as save's


def _listed(run_id: str, created: str, workflow: str = "wf", status: str = "completed",
            parent: str | None = None) -> Run:
    run = make_run(run_id)
    run.workflow, run.created_at, run.updated_at = workflow, created, created
    run.status, run.running_since = status, None
    if status == SUSPENDED:
        run.steps["a"].status = SUSPENDED
        run.steps["a"].pause = {"kind": PAUSE_SUSPEND, "since": created,
                                "due_at": "2030-01-01T00:00:00.000Z", "on_timeout": "cancel",
                                "nonce": "n"}
    if parent is not None:
        run.parent = {"run_id": parent, "step": "child", "index": None, "notified": status}
    return run


def test_find_runs_lists_newest_first_filters_and_pages(
    store: Store, open_store: Callable[[], Store]
) -> None:
    runs = [_listed("a", "2026-01-01T00:00:00.000Z"),
            _listed("b", "2026-01-03T00:00:00.000Z", status=SUSPENDED),
            _listed("c", "2026-01-02T00:00:00.000Z", workflow="other"),
            _listed("d", "2026-01-03T00:00:00.000Z", status="failed"),  # same time as b
            _listed("kid", "2026-01-04T00:00:00.000Z", parent="b", status=SUSPENDED)]
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
    for run in (_listed("top", "2026-01-01T00:00:00.000Z", status=SUSPENDED),
                _listed("kid", "2026-01-02T00:00:00.000Z", status=SUSPENDED, parent="x"),
                _listed("else", "2026-01-02T00:00:00.000Z", status=SUSPENDED, workflow="other"),
                _listed("done", "2026-01-02T00:00:00.000Z"),
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
