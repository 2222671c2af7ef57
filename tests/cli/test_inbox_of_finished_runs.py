"""`show` of a finished run does not promise that a step will take an event left in its inbox:
no step will (`show --json` keeps the inbox as it is)."""

from __future__ import annotations

import pytest
from conftest import Project

GATED = """
    steps:
      - id: gate
        wait: true
      - id: after
        needs: [gate]
"""
AFTER_PY = """
def after(ctx):
    if ctx.input.get("fail"):
        raise RuntimeError("boom")
    return "done"
"""


def _keep_an_event(project: Project, run_id: str, fail: bool = False) -> None:
    project.workflow("gated", GATED, AFTER_PY)
    project.json("start", "gated", "--run-id", run_id, "--input", '{"fail": true}' if fail else "{}")
    kept = project.json("send", run_id, "other", "--data", '{"n": 1}')
    assert kept["sent"]["status"] == "kept"


def test_a_suspended_run_still_says_the_next_wait_takes_it(project: Project) -> None:
    _keep_an_event(project, "r1")
    human = project.run("show", "r1").stdout
    assert "✉ other kept since" in human
    assert "the next step that waits for it takes it" in human


@pytest.mark.parametrize("finish", ["cancel", "complete", "fail"])
def test_a_finished_run_says_its_kept_event_was_never_taken(project: Project, finish: str) -> None:
    _keep_an_event(project, "r1", fail=finish == "fail")
    if finish == "cancel":
        project.json("cancel", "r1")
    else:
        out = project.run("resume", "r1", "--data", "{}")
        assert out.code == (1 if finish == "fail" else 0), out
    doc = project.run("show", "r1", "--json").json()
    assert doc["status"] in ("cancelled", "completed", "failed")
    assert [(e["kind"], e["name"], e["data"]) for e in doc["inbox"]] == [("event", "other", {"n": 1})]
    human = project.run("show", "r1").stdout
    line = next(text for text in human.splitlines() if text.startswith("✉ other kept since"))
    assert line.endswith(": never taken: the run finished before a step waited for it"), line
    assert "takes it" not in human
