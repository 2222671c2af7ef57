"""Issue 3: `show` and `list` say when each waiting run is due; `pending` shows each deadline."""

from __future__ import annotations

from conftest import Project

WAITS = """
    steps:
      - {id: poll}
      - {id: approve, needs: [], wait: true, timeout: 2d, on_timeout: fail}
"""
WAITS_PY = """
    def poll(ctx):
        ctx.flow.rerun("90s", {"n": 1}, 3)
        return {"n": 1}
"""


def start(project: Project) -> dict[str, object]:
    project.workflow("waits", WAITS, WAITS_PY)
    return project.json("start", "waits", "--run-id", "r1")


def test_list_shows_the_next_due_time_in_human_and_json_output(project: Project) -> None:
    doc = start(project)
    due = doc["waiting"][0]["due_at"]  # type: ignore[index]
    deadline = doc["suspended"][0]["deadline"]  # type: ignore[index]
    assert due < deadline  # the rerun (90 s) comes before the suspension's deadline (2 days)
    rows = project.json("list")
    assert [(r["run_id"], r["status"], r["next_due"]) for r in rows] == [("r1", "suspended", due)]
    human = project.run("list")
    assert human.code == 0 and due in human.stdout and "next due" in human.stdout


def test_show_says_when_each_timer_is_due_and_when_each_suspension_ends(project: Project) -> None:
    doc = start(project)
    due = doc["waiting"][0]["due_at"]  # type: ignore[index]
    deadline = doc["suspended"][0]["deadline"]  # type: ignore[index]
    shown = project.run("show", "r1")
    assert shown.code == 0
    assert f"poll rerun due at {due}" in shown.stdout
    assert f"deadline {deadline}, then fail" in shown.stdout


def test_pending_shows_each_suspension_deadline(project: Project) -> None:
    doc = start(project)
    deadline = doc["suspended"][0]["deadline"]  # type: ignore[index]
    [entry] = project.json("pending")
    assert (entry["run_id"], entry["step"], entry["deadline"], entry["on_timeout"]) == (
        "r1", "approve", deadline, "fail")
    human = project.run("pending")
    assert human.code == 0 and deadline in human.stdout
    # once the deadline has passed and tick applied on_timeout, nothing is pending any more
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").code == 1  # on_timeout: fail
    assert project.json("pending") == []
