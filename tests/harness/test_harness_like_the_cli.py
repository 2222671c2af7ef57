"""wfrun.testing takes what the command takes, and refuses what it refuses, with the error of
its exit code (`wfrun.errors`)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wfrun.errors import NotFoundError, UsageError
from wfrun.testing import Harness

GATE = """name: gate
steps:
  - id: ask
    wait: true
    label: manager
    timeout: 1h
    on_timeout: cancel
  - id: done
"""
GATE_PY = """
def done(ctx):
    return ctx.steps["ask"].output
"""


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "gate.yaml").write_text(GATE)
    (workflows / "gate.py").write_text(GATE_PY)
    return Harness(workflows, tmp_path / ".wfstate")


def test_resume_by_label_as_resume_label(harness: Harness) -> None:
    run_id = harness.start("gate")["run_id"]
    with pytest.raises(NotFoundError):
        harness.resume(run_id, {"ok": True}, label="director")
    with pytest.raises(UsageError, match="step= or label=, not both"):
        harness.resume(run_id, {"ok": True}, step="ask", label="manager")
    done = harness.resume(run_id, {"ok": True}, label="manager")
    assert (done["status"], done["output"]) == ("completed", {"ok": True})


@pytest.mark.parametrize("limit", [0, -1, "x", 1.5, True])
def test_tick_refuses_a_limit_tick_limit_refuses(harness: Harness, limit: object) -> None:
    with pytest.raises(UsageError, match="give a whole number of 1 or more"):
        harness.tick(limit=limit)  # type: ignore[arg-type]


def test_tick_with_a_limit_advances_that_many(harness: Harness) -> None:
    for _ in range(3):
        harness.start("gate")
    harness.advance("1h", tick=False)
    assert len(harness.tick(limit=2)["advanced"]) == 2
    assert len(harness.tick(limit=2)["advanced"]) == 1


def test_runs_refuses_a_status_list_status_refuses(harness: Harness) -> None:
    with pytest.raises(UsageError, match=r"'bogus'\): not one of running, suspended, waiting, "
                                         "completed, failed, cancelled"):
        harness.runs(status="bogus")
    run_id = harness.start("gate")["run_id"]
    assert [r["run_id"] for r in harness.runs(status="suspended")] == [run_id]


def test_history_refuses_an_event_type_no_event_has(harness: Harness) -> None:
    run_id = harness.start("gate")["run_id"]
    harness.resume(run_id, {"ok": True})
    with pytest.raises(UsageError, match=r"type='resume'\): no event has this type; the types "
                                         r"are started, .*, resumed,"):
        harness.history(run_id, "resume")
    assert len(harness.history(run_id, "resumed")) == 1
    assert harness.history(run_id, "timed_out") == []  # a type this run has no event of


def test_the_event_types_are_those_the_state_directory_doc_lists() -> None:
    from wfrun.testing._harness import EVENT_TYPES

    doc = (Path(__file__).resolve().parents[2] / "docs" / "state-directory.md").read_text()
    listed = doc[doc.index("Event types:"):doc.index("`retried` is both")]
    listed = re.sub(r"\([^()]*\)", "", listed)  # what an event carries, said in parentheses
    assert sorted(EVENT_TYPES) == sorted(re.findall(r"`([a-z_]+)`", listed))
