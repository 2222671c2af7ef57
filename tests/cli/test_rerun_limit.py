"""A "poll until done" loop that reaches its rerun limit keeps the seeds' semantics (the step's
return value becomes its output and the run goes on) but says so: in the tick's warnings (on
stderr; in its `advanced` entry with --json), in `show` and in the run document's warnings."""

from __future__ import annotations

from conftest import Project

POLL = """
    name: poll
    steps:
      - id: poll
      - id: use
"""
POLL_PY = """
def poll(ctx):
    ctx.flow.rerun("1m", max_retries=2)  # never done: the limit ends the loop
    return {"state": "PENDING", "runs": ctx.run.runs}

def use(ctx):
    return ctx.steps["poll"].output
"""


def test_reaching_the_rerun_limit_is_loud_in_tick_show_and_the_document(project: Project) -> None:
    project.workflow("poll", POLL, POLL_PY)
    doc = project.json("start", "poll", "--run-id", "p1")
    assert doc["status"] == "waiting" and doc["warnings"] == []
    first = project.run("tick", "--now", "+2m")
    assert first.code == 0 and "warning" not in first.stdout + first.stderr
    last = project.run("tick", "--now", "+4m")
    assert last.code == 0
    assert last.stdout.split() == ["p1", "poll", "rerun", "->", "completed"]  # the advance only
    assert last.stderr.splitlines() == [  # a warning goes to stderr (SPEC §4), as show's does
        "warning: run p1: step 'poll' reached its rerun limit (max_retries=2): its last return "
        "value was taken as its output and the run went on"]
    doc = project.json("show", "p1")
    assert doc["status"] == "completed" and doc["output"] == {"state": "PENDING", "runs": 3}
    assert doc["warnings"] == [
        "step 'poll' reached its rerun limit (max_retries=2): its last return value was "
        "taken as its output and the run went on"]
    shown = project.run("show", "p1")
    assert "reached its rerun limit" in shown.stderr
    [note] = [e for e in doc["history"] if e["type"] == "step_completed" and e["step"] == "poll"]
    assert note["rerun_limit"] == 2


def test_the_tick_json_entry_carries_the_warning(project: Project) -> None:
    project.workflow("poll", POLL, POLL_PY.replace("max_retries=2", "max_retries=0"))
    doc = project.json("start", "poll", "--run-id", "p0")
    assert doc["status"] == "completed"
    assert "reached its rerun limit (max_retries=0)" in doc["warnings"][0]


def test_a_foreach_iteration_reaching_its_limit_is_said_too(project: Project) -> None:
    project.workflow("polls", """
        name: polls
        steps:
          - id: jobs
          - id: poll
            foreach: jobs
    """, """
def jobs(ctx):
    return ["a", "b"]

def poll(ctx):
    if ctx.item == "b":
        ctx.flow.rerun("1m", max_retries=1)  # never done: the limit ends it
    return {"job": ctx.item, "runs": ctx.run.runs}
""")
    doc = project.json("start", "polls", "--run-id", "f1")
    assert doc["status"] == "waiting" and doc["warnings"] == []
    tick = project.json("tick", "--now", "+2m")
    [entry] = tick["advanced"]
    assert (entry["step"], entry["status"]) == ("poll[1]", "completed"), tick
    warning = ("step 'poll[1]' reached its rerun limit (max_retries=1): its last return value "
               "was taken as its output and the run went on")
    assert entry["warning"] == warning
    doc = project.json("show", "f1")
    assert doc["output"] == [{"job": "a", "runs": 1}, {"job": "b", "runs": 2}]
    assert doc["warnings"] == [warning]
