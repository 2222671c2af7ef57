"""Issue 4, one durable write per step: a step that `tick` fires costs one durable snapshot
write (its outcome); "step running" lives meanwhile in the run's claim file, without fsync, and
is believed only while it verifies and sits one revision above the snapshot (what a power cut
may leave is ignored: the timer fires again)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import Project

from wfrun.store import _fsops

POLL_PY = """
import json, os

def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1s", None, 3)
        return "again"
    marker = ctx.input.get("marker")
    if marker:  # report the snapshot as this process sees it while the step executes
        from wfrun.store.file import FileStore
        seen = FileStore(ctx.input["state"]).load(ctx.run_id)
        with open(marker, "w") as fh:
            json.dump([seen.revision, seen.steps["poll"].status, seen.steps["poll"].runs], fh)
    return ctx.run.runs
"""
NOW = "2030-01-01T00:00:00Z"


def _start(project: Project, run_id: str, **extra: str) -> None:
    project.workflow("poll", "steps: [{id: poll}]", POLL_PY)
    project.json("start", "poll", "--run-id", run_id, "--input", json.dumps(extra))


def test_a_fired_rerun_costs_one_durable_snapshot_write(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    _start(project, "p1")
    _start(project, "p2")
    trace = _trace_syncs(monkeypatch)
    out = project.run("tick", "--now", NOW, "--json")
    assert [(a["run_id"], a["status"]) for a in out.json()["advanced"]] == [
        ("p1", "completed"), ("p2", "completed")]
    assert [name for op, name in trace if op != "dirsync"] == ["p1.json", "p2.json"]
    doc = project.json("show", "p1")
    assert doc["steps"]["poll"]["runs"] == 2 and doc["steps"]["poll"]["output"] == 2
    types = [e["type"] for e in doc["history"]]
    assert types[types.index("timer_fired"):] == [
        "timer_fired", "step_started", "step_completed", "completed"]
    assert (project.state / "locks" / "p1.exec").stat().st_size == 0  # the record is cleared


def test_other_processes_see_the_step_running_while_tick_executes_it(project: Project) -> None:
    marker = project.root / "seen"
    _start(project, "p1", marker=str(marker), state=str(project.state))
    before = project.json("show", "p1")["steps"]["poll"]
    assert (before["status"], before["runs"]) == ("waiting", 1)
    assert project.run("tick", "--now", NOW).code == 0
    # revision 2 was the rerun's snapshot; 3 is the record, never a durable snapshot
    assert json.loads(marker.read_text()) == [3, "running", 2]
    assert project.json("show", "p1")["status"] == "completed"


def _kill_mid_step(project: Project, run_id: str) -> Path:
    """Run a tick that dies inside the step: the record stays in the claim file."""
    project.workflow("die", "steps: [{id: poll}]", """
        import os

        def poll(ctx):
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s", None, 3)
                return "again"
            if not os.path.exists(ctx.input["died"]):  # dies once, mid-step
                open(ctx.input["died"], "w").close()
                os._exit(9)
            return ctx.run.runs
        """)
    died = str(project.root / "died")
    project.json("start", "die", "--run-id", run_id, "--input", json.dumps({"died": died}))
    assert project.cli("tick", "--now", NOW).code == 9
    exec_file = project.state / "locks" / f"{run_id}.exec"
    assert exec_file.stat().st_size > 0
    return exec_file


def test_a_killed_tick_leaves_the_step_running_and_the_next_tick_recovers_it(
    project: Project,
) -> None:
    _kill_mid_step(project, "k1")
    shown = project.json("show", "k1")
    assert (shown["status"], shown["steps"]["poll"]["runs"]) == ("running", 2)
    out = project.json("tick", "--now", NOW)
    assert [(a["reason"], a["status"]) for a in out["advanced"]] == [("recovered", "completed")]
    final = project.json("show", "k1")
    assert final["steps"]["poll"]["runs"] == 3
    assert "recovered" in [e["type"] for e in final["history"]]


def test_a_run_left_interrupted_by_a_killed_tick_is_listed_as_running(project: Project) -> None:
    """The run index files a run under the status `show` gives it: a step started by a tick
    (its record in the claim file) makes it running, in `list --status running` too (what
    docs/cron-and-systemd.md's monitoring recipe looks for), not waiting."""
    _kill_mid_step(project, "k1")
    assert [r["run_id"] for r in project.json("list", "--status", "running")] == ["k1"]
    assert project.json("list", "--status", "waiting") == []
    assert project.run("doctor").code == 0  # its entry is where it belongs
    project.json("tick", "--now", NOW)
    assert [r["run_id"] for r in project.json("list", "--status", "completed")] == ["k1"]
    assert project.json("list", "--status", "running") == []


@pytest.mark.parametrize("damage", ["lost", "torn", "flipped"])
def test_a_record_a_power_cut_damaged_is_ignored_and_the_timer_fires_again(
    project: Project, damage: str
) -> None:
    exec_file = _kill_mid_step(project, "k1")
    raw = exec_file.read_bytes()
    if damage == "lost":
        exec_file.write_bytes(b"")
    elif damage == "torn":
        exec_file.write_bytes(raw[: len(raw) // 2])
    else:
        exec_file.write_bytes(raw.replace(b'"running"', b'"runnin9"', 1))
    shown = project.json("show", "k1")  # the durable snapshot: the rerun still due
    assert (shown["status"], shown["steps"]["poll"]["runs"]) == ("waiting", 1)
    out = project.json("tick", "--now", NOW)
    assert [(a["reason"], a["status"]) for a in out["advanced"]] == [("rerun", "completed")]
    final = project.json("show", "k1")
    # executed three times, counted twice: the lost attempt is not counted (docs/guarantees.md)
    assert final["steps"]["poll"]["runs"] == 2
    assert "recovered" not in [e["type"] for e in final["history"]]


def _trace_syncs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """Snapshot writes (`write`: directory fsync included, `deferred`: not) and directory
    fsyncs, in a process that knows nothing of the runs' files yet (as a cold `wfrun tick`:
    the CLI runs in this test's process, which wrote them)."""
    for known in ("_SEEN", "_INSTALLED", "_DURABLE"):
        monkeypatch.setattr(_fsops, known, {})
    trace: list[tuple[str, str]] = []
    real_replace, real_dir = _fsops.durable_replace, _fsops.fsync_dir

    def durable_replace(path: str, data: bytes, *, sync_dir: bool = True) -> None:
        trace.append(("write" if sync_dir else "deferred", os.path.basename(path)))
        real_replace(path, data, sync_dir=sync_dir)

    def fsync_dir(path: str) -> None:
        real_dir(path)
        trace.append(("dirsync", os.path.basename(path)))

    monkeypatch.setattr(_fsops, "durable_replace", durable_replace)
    monkeypatch.setattr(_fsops, "fsync_dir", fsync_dir)
    return trace


def test_the_runs_a_tick_advanced_share_one_directory_fsync(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    for run_id in ("p1", "p2", "p3"):
        _start(project, run_id)
    trace = _trace_syncs(monkeypatch)
    out = project.run("tick", "--now", NOW, "--json")
    assert [a["status"] for a in out.json()["advanced"]] == ["completed"] * 3
    # first, once: before the first spare is rewritten, what earlier (possibly killed)
    # writers renamed is made durable (the runs the tick claimed were seen before it); then
    # the three runs' last states share one flush
    assert trace == [("deferred", "p1.json"), ("dirsync", "runs"), ("deferred", "p2.json"),
                     ("deferred", "p3.json"), ("dirsync", "runs")]


def test_a_step_never_starts_on_a_state_that_is_not_durable(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A run that goes on to a next step within the tick: the state that starts it is made
    durable first (a power cut must not bring back a step that a later one already followed)."""
    project.workflow("chain", "steps: [{id: poll}, {id: after, handler: after}]",
                     POLL_PY + "\ndef after(ctx):\n    return 'done'\n")
    project.json("start", "chain", "--run-id", "c1", "--input", "{}")
    _start(project, "p1")
    trace = _trace_syncs(monkeypatch)
    out = project.run("tick", "--now", NOW, "--json")
    assert [(a["run_id"], a["status"]) for a in out.json()["advanced"]] == [
        ("c1", "completed"), ("p1", "completed")]
    # c1: poll's outcome with `after` marked running is durable before `after` executes; its
    # final state and p1's share the flush at the end
    assert trace == [("write", "c1.json"), ("dirsync", "runs"), ("dirsync", "runs"),
                     ("deferred", "c1.json"), ("deferred", "p1.json"), ("dirsync", "runs")]
