"""Composite steps over every store: a `foreach` step once per element, in order, and a
`workflow:` step whose child run suspends, is resumed through its parent's address, and hands
its output back. State is read back through the store."""

from __future__ import annotations

import pytest

from wfrun.engine import Engine
from wfrun.errors import SchemaViolation


def test_foreach_executes_the_step_once_per_element_in_order(engine: Engine) -> None:
    result = engine.start("fanout", {"items": [3, 1, 2]}, run_id="f1")
    assert (result.run.status, result.run.output) == ("completed", 12)
    run = engine.store.load("f1")
    assert run.steps["double"].output == [{"index": 0, "double": 6}, {"index": 1, "double": 2},
                                          {"index": 2, "double": 4}]
    assert [it.status for it in run.steps["double"].iterations or []] == ["completed"] * 3
    empty = engine.start("fanout", {"items": []}, run_id="f2")
    assert (empty.run.status, empty.run.output) == ("completed", 0)


def test_a_child_run_suspends_its_parent_and_resumes_it_when_answered(engine: Engine) -> None:
    result = engine.start("parent", {"item": "lamp"}, run_id="p1")
    assert result.run.status == "suspended"
    parent = engine.store.load("p1")
    child_id = parent.steps["review"].child
    assert child_id is not None and child_id.startswith("p1--review")
    child = engine.store.load(child_id)
    assert (child.status, child.input, child.steps["ask"].status) == (
        "suspended", {"item": "lamp"}, "suspended")
    assert child.parent is not None and child.parent["run_id"] == "p1"
    assert [r.run_id for r in engine.store.find_runs().runs] == ["p1"]  # top-level only
    assert sorted(r.run_id for r in engine.store.find_runs(top_level=False).runs) == sorted(
        ["p1", child_id])
    doc = engine.document(engine.get("p1"))
    assert [s["step"] for s in doc["suspended"]] == ["review/ask"]
    with pytest.raises(SchemaViolation):
        engine.resume("p1", {"ok": "sure"}, "review/ask")
    assert engine.store.load(child_id).revision == child.revision
    resumed = engine.resume("p1", {"ok": True}, "review/ask")
    assert (resumed.run.status, resumed.run.output) == (
        "completed", {"reviewed": {"item": "lamp", "ok": True}})
    assert engine.store.load(child_id).status == "completed"
    assert engine.store.load("p1").status == "completed"
    in_child = [(e["type"], e["step"]) for e in engine.store.read_history(child_id)]
    resumed = in_child.index(("resumed", "ask"))  # completed by the resume: it says so
    assert in_child[resumed + 1] == ("step_completed", "ask"), in_child


def test_cancelling_the_parent_cancels_its_open_child(engine: Engine) -> None:
    engine.start("parent", run_id="p1")
    child_id = engine.store.load("p1").steps["review"].child
    assert child_id is not None
    engine.cancel("p1")
    assert engine.store.load("p1").status == "cancelled"
    assert engine.store.load(child_id).status == "cancelled"
