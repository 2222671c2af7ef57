"""The engine over every store: a run from start to completion, suspended and resumed (the data
checked by the step's schema before anything is written), cancelled, and taken over by a tick
once its executor went away. State is read back through the store."""

from __future__ import annotations

import _stores
import pytest

from wfrun.engine import Engine
from wfrun.errors import ConflictError, NotFoundError, SchemaViolation
from wfrun.store.abc import Store


def events(store: Store, run_id: str) -> list[str]:
    """The types of the run's history events, oldest first."""
    return [e["type"] for e in store.read_history(run_id)]


def test_a_run_executes_every_step_to_completion(engine: Engine) -> None:
    result = engine.start("greet", {"name": "ada"}, run_id="g1")
    assert (result.run.status, result.run.output) == ("completed", "HELLO ADA")
    stored = engine.store.load("g1")
    assert stored.status == "completed" and stored.output == "HELLO ADA"
    assert stored.steps["hello"].output == {"greeting": "hello ada"}
    assert [s.runs for s in stored.steps.values()] == [1, 1]
    assert stored.created_at == "2026-01-05T09:00:00.000Z" and stored.next_due() is None
    assert events(engine.store, "g1") == ["started", "step_started", "step_completed",
                                         "step_started", "step_completed", "completed"]
    doc = engine.document(engine.get("g1"))
    assert (doc["status"], doc["output"], doc["suspended"], doc["waiting"]) == (
        "completed", "HELLO ADA", [], [])
    again = engine.start("greet", {"name": "ada"}, run_id="g1")  # the same start: the same run
    assert again.run.revision == stored.revision and again.warnings


def test_a_start_with_input_its_schema_refuses_stores_nothing(engine: Engine) -> None:
    with pytest.raises(SchemaViolation):
        engine.start("greet", {"name": 7}, run_id="bad")
    assert not engine.store.exists("bad") and engine.store.run_ids() == []
    with pytest.raises(NotFoundError):
        engine.start("no-such-workflow", {})


def test_a_suspended_run_continues_with_the_data_it_is_resumed_with(engine: Engine) -> None:
    result = engine.start("approval", {"amount": 12.5}, run_id="a1")
    assert result.run.status == "suspended"
    stored = engine.store.load("a1")
    assert stored.steps["approve"].status == "suspended"
    assert stored.next_due() == "2026-01-07T09:00:00.000Z"  # the 2d timeout
    assert [r.run_id for r in engine.store.pending()[0]] == ["a1"]
    engine.clock.advance("1h")
    resumed = engine.resume("a1", {"approved": True}, "approve")
    assert (resumed.run.status, resumed.run.output) == (
        "completed", {"amount": 12.5, "approved": True})
    stored = engine.store.load("a1")
    assert stored.steps["approve"].resume_data == {"approved": True}
    assert stored.steps["finish"].finished_at == "2026-01-05T10:00:00.000Z"
    assert engine.store.pending()[0] == [] and stored.next_due() is None
    assert events(engine.store, "a1").count("resumed") == 1
    with pytest.raises(ConflictError):  # a second resume of the same suspension
        engine.resume("a1", {"approved": False}, "approve")
    assert engine.store.load("a1").output == {"amount": 12.5, "approved": True}


def test_a_step_completed_by_a_resume_records_step_completed_after_resumed(
        engine: Engine) -> None:
    # SPEC §4: as `on_timeout: resume` does (`timed_out`, then `step_completed`), a step or
    # iteration a resume completes (`wfrun resume`, a link, an event) logs `resumed`, then
    # `step_completed`
    engine.start("gates", run_id="g1")
    engine.resume("g1", {"by": "cli"}, "hold")
    engine.resume("g1", {"by": "cli"}, "each[0]")
    [link] = [s["resume_url"] for s in engine.document(engine.get("g1"))["suspended"]
              if s["step"] == "each[1]"]
    engine.accept_resume("g1", "each[1]", link.split("token=")[1], {"by": "http"}, None,
                         {"body": {"by": "http"}, "headers": {}, "query": {},
                          "method": "POST", "source": "http"})
    engine.continue_run("g1")
    engine.send("g1", "paid", {"amount": 1})
    assert engine.store.load("g1").status == "completed"
    seen = [(e["type"], e["step"]) for e in engine.store.read_history("g1")
            if e["type"] in ("resumed", "step_completed")]
    assert seen == [("resumed", "hold"), ("step_completed", "hold"),
                    ("step_completed", "split"),
                    ("resumed", "each[0]"), ("step_completed", "each[0]"),
                    ("resumed", "each[1]"), ("step_completed", "each[1]"),
                    ("step_completed", "each"),
                    ("resumed", "pay"), ("step_completed", "pay")], seen
    history = engine.store.read_history("g1")
    for i, e in enumerate(history):  # each completion right after its resume, at its time
        if e["type"] == "resumed":
            after = history[i + 1]
            assert (after["type"], after["step"], after["at"], after["runs"]) == (
                "step_completed", e["step"], e["at"], 1), history[i:i + 2]


@pytest.mark.parametrize("data", [{"approved": "yes"}, {}, None, [True]])
def test_resume_data_the_schema_refuses_changes_nothing(engine: Engine, data: object) -> None:
    engine.start("approval", {"amount": 3}, run_id="a1")
    before = engine.store.load("a1")
    history = engine.store.read_history("a1")
    with pytest.raises(SchemaViolation):
        engine.resume("a1", data, "approve")
    after = engine.store.load("a1")
    assert after.to_dict() == before.to_dict() and after.revision == before.revision
    assert engine.store.read_history("a1") == history
    assert engine.resume("a1", {"approved": False}).run.output == {"amount": 3, "approved": False}


def test_cancel_ends_a_run_and_drops_its_timers(engine: Engine) -> None:
    engine.start("approval", {"amount": 1}, run_id="a1")
    cancelled = engine.cancel("a1", "not needed")
    assert cancelled.run.status == "cancelled"
    stored = engine.store.load("a1")
    assert stored.status == "cancelled" and stored.next_due() is None
    assert engine.store.due("2030-01-01T00:00:00.000Z") == []
    assert events(engine.store, "a1")[-1] == "cancelled"
    with pytest.raises(ConflictError):
        engine.cancel("a1")
    with pytest.raises(ConflictError):
        engine.resume("a1", {"approved": True}, "approve")
    engine.clock.advance("3d")
    assert engine.tick().advanced == []  # its deadline is gone with it
    assert engine.store.load("a1").revision == stored.revision


def test_a_run_whose_executor_went_away_is_taken_over_by_the_next_tick(
        engine: Engine, backend: _stores.Backend) -> None:
    engine.create("greet", {"name": "bo"}, run_id="c1")  # stored, its first step due at once
    holder = backend.hold("c1")  # another process claims it to execute it
    try:
        assert engine.tick().advanced == []  # held by a live executor: left alone
        assert engine.store.load("c1").steps["hello"].runs == 0
        holder.go_away()
        assert _stores.wait_until(lambda: not engine.store.is_claimed("c1"), 10)
        report = engine.tick()
        assert report.errors == [] and [a["run_id"] for a in report.advanced] == ["c1"]
        run = engine.store.load("c1")
        assert (run.status, run.output) == ("completed", "HELLO BO")
    finally:
        holder.close()
