"""What `wfrun state copy` asks of every store (memory, file, PostgreSQL): a run imported exactly
as another store kept it (revision, due entry, history, logs), an identical one left alone and a
different one refused; the URL key adopted only where there is none; schedule states listed;
`has_state` and `stored_secret_key` answered without creating anything."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import _stores
import pytest

from wfrun.errors import ConflictError, UsageError
from wfrun.model import SUSPENDED
from wfrun.store.abc import Store

from ._runs import make_run

DUE = "2026-03-01T00:00:00.000Z"
HISTORY = [{"at": "2026-01-01T00:00:00.000Z", "type": "started", "step": None},
           {"at": "2026-01-01T00:00:01.000Z", "type": "suspended", "step": "a", "note": "ü\u2028"}]
LOGS = [{"at": "2026-01-01T00:00:00.500Z", "step": "a", "runs": 1, "stream": "stdout",
         "text": "hello"}]


def imported(run_id: str, revision: int = 7) -> Any:
    run = make_run(run_id, due=DUE)
    run.revision = revision
    run.inbox = [{"kind": "event", "name": "poke", "data": {"a": 1},
                  "at": "2026-01-01T00:00:02.000Z", "source": "cli"}]
    return run


def test_an_imported_run_reads_back_exactly_and_is_due_and_listed(
        store: Store, open_store: Callable[[], Store]) -> None:
    run = imported("r1")
    assert store.import_run(run, HISTORY, LOGS) is True
    other = open_store()
    loaded = other.load("r1")
    assert loaded == run and loaded.revision == 7 and loaded.inbox == run.inbox
    assert other.read_history("r1") == HISTORY
    assert other.read_logs("r1")[0] == LOGS
    assert other.due("2026-02-28T23:59:59.000Z") == []
    assert other.due(DUE) == ["r1"]
    assert [s.run_id for s in other.find_runs(statuses=[SUSPENDED]).runs] == ["r1"]
    assert [r.run_id for r in other.pending()[0]] == ["r1"]
    loaded.output = "on"  # it goes on from the revision it came with
    other.save(loaded)
    assert loaded.revision == 8 and open_store().load("r1").output == "on"


def test_the_same_run_again_is_left_and_a_different_one_is_a_conflict(
        store: Store, open_store: Callable[[], Store]) -> None:
    assert store.import_run(imported("r1"), HISTORY, LOGS) is True
    assert open_store().import_run(imported("r1"), HISTORY, LOGS) is False
    newer = imported("r1", revision=8)
    with pytest.raises(ConflictError, match=r"run r1 exists already in .* revision 7 .* "
                                            r"revision 8"):
        store.import_run(newer, HISTORY, LOGS)
    with pytest.raises(ConflictError, match=r"run r1 exists already in .* a different history"):
        store.import_run(imported("r1"), HISTORY[:1], LOGS)
    with pytest.raises(ConflictError, match="different log records"):
        store.import_run(imported("r1"), HISTORY, [])
    other = open_store()
    assert other.load("r1") == imported("r1")
    assert other.read_history("r1") == HISTORY and other.read_logs("r1")[0] == LOGS


def test_a_run_no_store_kept_is_refused(store: Store) -> None:
    with pytest.raises(UsageError, match="run r0 has revision 0"):
        store.import_run(imported("r0", revision=0), [], [])
    assert not store.exists("r0")


def test_a_run_without_history_or_logs_imports_as_such(
        store: Store, open_store: Callable[[], Store]) -> None:
    assert store.import_run(imported("bare", revision=1), [], []) is True
    other = open_store()
    assert other.read_history("bare") == [] and other.read_logs("bare") == ([], 0)
    assert other.import_run(imported("bare", revision=1), [], []) is False


def test_the_url_key_is_adopted_only_where_there_is_none(
        store: Store, open_store: Callable[[], Store]) -> None:
    assert store.stored_secret_key() is None
    key = bytes(range(40))
    assert store.adopt_secret_key(key) is True
    other = open_store()
    assert other.stored_secret_key() == key and other.secret_key() == key
    assert other.adopt_secret_key(key) is False
    with pytest.raises(ConflictError, match="links signed by either would stop working"):
        open_store().adopt_secret_key(bytes(40))
    assert open_store().secret_key() == key
    with pytest.raises(UsageError):
        open_store().adopt_secret_key(b"short")


def test_a_store_that_made_its_own_key_refuses_another(
        store: Store, open_store: Callable[[], Store]) -> None:
    own = store.secret_key()
    with pytest.raises(ConflictError):
        open_store().adopt_secret_key(bytes(40))
    assert open_store().stored_secret_key() == own


def test_schedule_states_are_listed_by_workflow(store: Store) -> None:
    assert store.schedule_workflows() == []
    long_name = "w" + "x" * 150  # (the file store shortens its file name)
    for workflow in ("nightly", long_name, "a-first"):
        store.save_schedule_state(workflow, {"paused": True}, 0)
    assert store.schedule_workflows() == sorted(["nightly", long_name, "a-first"])


@pytest.mark.parametrize("kind", _stores.KINDS)
def test_has_state_creates_nothing(kind: str, tmp_path: Any) -> None:
    with _stores.backend(kind, tmp_path) as backend:
        fresh = backend.open()
        assert fresh.has_state() is False
        assert backend.open().has_state() is False  # (asking made nothing)
        assert fresh.stored_secret_key() is None
        if kind == "file":
            assert not (tmp_path / "state").exists()
        fresh.import_run(imported("r1"), HISTORY, LOGS)
        assert backend.open().has_state() is True
