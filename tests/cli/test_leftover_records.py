"""A run id whose earlier run's snapshot was moved away by hand, its history and log left
behind: a new run of that id is refused (exit 3, saying what to remove), never given the
earlier run's history, whether `start --run-id` or a schedule asks for it."""

from __future__ import annotations

from conftest import Project

from .test_schedules import run as run_fast
from .test_schedules import scheduled

HELLO = """
    steps:
      - id: greet
"""
HELLO_PY = """
def greet(ctx):
    print("hello from", ctx.run_id)
    return "hi"
"""


def _move_snapshot_away(project: Project, run_id: str) -> None:
    (project.state / "runs" / f"{run_id}.json").rename(project.root / f"{run_id}.json")


def test_start_refuses_an_id_whose_history_outlived_its_snapshot(project: Project) -> None:
    project.workflow("hello", HELLO, HELLO_PY)
    assert project.run("start", "hello", "--run-id", "r1").code == 0
    _move_snapshot_away(project, "r1")
    before = project.snapshots()
    history = project.state / "runs" / "r1.history.jsonl"
    log = project.state / "runs" / "r1.log.jsonl"

    refused = project.run("start", "hello", "--run-id", "r1")
    assert refused.code == 3, refused
    assert "Traceback" not in refused.stderr
    assert f"run r1 cannot be created: {history} and {log} are left from an earlier run r1 " \
           "whose snapshot is gone" in refused.stderr
    assert f"rm {history} {log}" in refused.stderr
    assert project.snapshots() == before  # nothing written

    assert project.run("list").code == 0  # drops the run-index entry of the moved snapshot
    doctor = project.run("doctor")
    assert doctor.code == 0 and "no run can be started again as r1" in doctor.stderr

    history.unlink()
    log.unlink()
    doc = project.json("start", "hello", "--run-id", "r1")
    assert doc["status"] == "completed"
    events = project.json("show", "r1")["history"]
    assert [e["type"] for e in events].count("started") == 1


def test_a_schedule_whose_run_id_has_leftovers_says_so(project: Project) -> None:
    scheduled(project, "every: 15m")
    run_id = "sched-beat-20260302T0900Z"
    assert run_fast(project, "start", "beat", "--run-id", run_id).code == 0
    _move_snapshot_away(project, run_id)

    out = run_fast(project, "tick", "--now", "2026-03-02T09:01:00Z", "--json")
    assert out.code == 1, out
    report = out.json()
    assert report["advanced"] == []
    assert [e["run_id"] for e in report["errors"]] == [run_id]
    assert f"run {run_id} cannot be created" in report["errors"][0]["message"]
