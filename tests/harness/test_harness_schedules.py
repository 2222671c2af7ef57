"""wfrun.testing and schedules: none fires unless the test asks (`schedules=`), so a scheduled
workflow in the workflows directory changes no other test's tick reports."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wfrun.errors import UsageError
from wfrun.testing import Harness

from .test_testing import APPROVAL, APPROVAL_PY, pytest_in

HEARTBEAT = "name: heartbeat\nschedule: {every: 1h}\nsteps: [{id: beat}]\n"
NIGHTLY = "name: nightly\nschedule: {cron: '0 2 * * *'}\nsteps: [{id: beat}]\n"
BEAT_PY = 'def beat(ctx):\n    return "ok"\n'


@pytest.fixture
def workflows(tmp_path: Path) -> Path:
    directory = tmp_path / "workflows"
    directory.mkdir()
    for name, manifest, module in (("heartbeat", HEARTBEAT, BEAT_PY), ("nightly", NIGHTLY, BEAT_PY),
                                   ("approval", textwrap.dedent(APPROVAL), APPROVAL_PY)):
        (directory / f"{name}.yaml").write_text(manifest)
        (directory / f"{name}.py").write_text(module)
    return directory


def test_no_schedule_fires_unless_asked(workflows: Path, tmp_path: Path) -> None:
    h = Harness(workflows, tmp_path / "state")  # the clock starts at a fire time of every: 1h
    run = h.start("approval")
    assert h.tick() == {"advanced": [], "errors": []}
    assert h.advance("1d") == {"advanced": [], "errors": []}
    assert [r["run_id"] for r in h.runs()] == [run["run_id"]]
    assert h.start("heartbeat")["output"] == "ok"  # a scheduled workflow can still be started
    assert {r["workflow"]: (r["paused"], r["last_fire"]) for r in h.engine.schedules()} == {
        "heartbeat": (False, None), "nightly": (False, None)}  # left alone: nothing written


def test_schedules_true_fires_them_as_wfrun_tick_does(workflows: Path, tmp_path: Path) -> None:
    h = Harness(workflows, tmp_path / "state", schedules=True)
    assert h.tick()["advanced"] == [{"run_id": "sched-heartbeat-20260105T0900Z", "step": None,
                                     "reason": "schedule", "status": "completed"}]
    assert [a["run_id"] for a in h.advance("1h")["advanced"]] == ["sched-heartbeat-20260105T1000Z"]
    h.set_time("2026-01-06T02:00:00Z")
    assert sorted(a["run_id"] for a in h.tick()["advanced"]) == [
        "sched-heartbeat-20260106T0200Z", "sched-nightly-20260106T0200Z"]


def test_a_list_of_names_fires_those_only(workflows: Path, tmp_path: Path) -> None:
    h = Harness(workflows, tmp_path / "state", schedules=["nightly"])
    assert h.tick() == {"advanced": [], "errors": []}
    h.set_time("2026-01-06T02:00:00Z")
    assert [a["run_id"] for a in h.tick()["advanced"]] == ["sched-nightly-20260106T0200Z"]


def test_a_broken_schedule_is_reported_only_when_it_is_asked_for(workflows: Path,
                                                                  tmp_path: Path) -> None:
    (workflows / "broken.yaml").write_text("name: broken\nschedule: {every: often}\n"
                                           "steps: [{id: beat}]\n")
    assert Harness(workflows, tmp_path / "off").tick() == {"advanced": [], "errors": []}
    [error] = Harness(workflows, tmp_path / "on", schedules=True).tick()["errors"]
    assert (error["run_id"], error["workflow"]) == (None, "broken")


def test_a_bad_schedules_option_is_a_usage_error(workflows: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="give True, False or a list"):
        Harness(workflows, tmp_path / "state", schedules="heartbeat")
    with pytest.raises(UsageError, match=r"named 'approval', 'typo' has a schedule \(those "
                                         r"with one: heartbeat, nightly\)"):
        Harness(workflows, tmp_path / "state", schedules=["approval", "typo"])


def test_the_marker_asks_for_schedules(workflows: Path, tmp_path: Path) -> None:
    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_sched.py").write_text(textwrap.dedent("""
        import pytest

        def test_isolated(wfrun_harness):
            run = wfrun_harness.start("approval")
            report = wfrun_harness.advance("2d")
            assert report["advanced"] == [{"run_id": run["run_id"], "step": "ask",
                                           "reason": "timeout", "status": "cancelled"}]

        @pytest.mark.wfrun(schedules=["heartbeat"])
        def test_fires(wfrun_harness):
            assert [a["run_id"] for a in wfrun_harness.advance("1h")["advanced"]] == [
                "sched-heartbeat-20260105T1000Z"]
    """))
    proc = pytest_in(tmp_path, "tests/test_sched.py")
    assert "2 passed" in proc.stdout, proc.stdout + proc.stderr


def test_advance_to_due_goes_to_the_next_fire_time_of_a_schedule_that_fires(
        workflows: Path, tmp_path: Path) -> None:
    h = Harness(workflows, tmp_path / "state", schedules=["heartbeat"])
    assert [a["run_id"] for a in h.advance_to_due()["advanced"]] == [
        "sched-heartbeat-20260105T0900Z"]  # due at the start itself
    run = h.start("approval")  # its deadline is in 2 days: the hourly fire times come first
    assert [a["run_id"] for a in h.advance_to_due()["advanced"]] == [
        "sched-heartbeat-20260105T1000Z"]
    assert h.now.isoformat() == "2026-01-05T10:00:00+00:00"
    h.set_time("2026-01-07T08:30:00Z")
    assert [a["run_id"] for a in h.advance_to_due(run["run_id"])["advanced"]] == [
        run["run_id"], "sched-heartbeat-20260107T0900Z"]  # the run's deadline; the tick fires too
    assert h.now.isoformat() == "2026-01-07T09:00:00+00:00"


def test_advance_to_due_ignores_the_schedules_that_do_not_fire(workflows: Path,
                                                               tmp_path: Path) -> None:
    h = Harness(workflows, tmp_path / "state")
    with pytest.raises(UsageError, match=r"no schedule fires \(schedules fire only if the test "
                                         r"asks: schedules=True or a list of names\)"):
        h.advance_to_due()
    run_id = h.start("approval")["run_id"]
    assert h.advance_to_due()["advanced"][0]["run_id"] == run_id  # its deadline, 2 days on
    assert h.now.isoformat() == "2026-01-07T09:00:00+00:00"
