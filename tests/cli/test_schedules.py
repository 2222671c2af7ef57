"""Schedules (SPEC §11): `schedule:` in a manifest, fired by `wfrun tick`, listed, paused and
unpaused by `wfrun schedules`. Time moves with `--now`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Outcome, Project
from typer.testing import CliRunner

from wfrun.cli import app_for
from wfrun.clock import SystemClock
from wfrun.engine import Engine
from wfrun.ids import RUN_ID_PATTERN
from wfrun.store.file import FileStore

BEAT = "def beat(ctx):\n    return ctx.run_id\n"


def scheduled(project: Project, schedule: str, name: str = "beat", extra: str = "") -> None:
    """A one-step workflow NAME with `schedule: {SCHEDULE}`."""
    project.workflow(name, f"schedule: {{{schedule}}}\n{extra}steps:\n  - id: beat\n", BEAT)


def run(project: Project, *args: str) -> Outcome:
    """`wfrun ARGS` in this process, with typer building only the command it runs, as the
    `wfrun` script does (these tests run commands hundreds of times)."""
    argv = [*project.base_args(), *args]
    result = CliRunner().invoke(app_for(argv), argv)
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def as_json(project: Project, *args: str) -> Any:
    out = run(project, *args, "--json")
    assert out.code == 0, (out.code, out.stdout, out.stderr)
    return out.json()


def tick(project: Project, now: str) -> dict[str, Any]:
    return as_json(project, "tick", "--now", now)  # type: ignore[no-any-return]


def started(report: dict[str, Any]) -> list[str]:
    """The runs a tick's report says it started for a schedule."""
    return [a["run_id"] for a in report["advanced"] if a["reason"] == "schedule"]


def runs(project: Project, workflow: str = "beat") -> list[str]:
    return sorted(r["run_id"] for r in as_json(project, "list", "--all", "--workflow", workflow))


def listing(project: Project, now: str) -> dict[str, dict[str, Any]]:
    return {row["workflow"]: row for row in as_json(project, "schedules", "--now", now)}


# -- every -------------------------------------------------------------------------------------

def test_every_15m_fires_on_the_quarter_hours_once_each(project: Project) -> None:
    scheduled(project, "every: 15m")
    assert started(tick(project, "2026-03-02T09:01:00Z")) == ["sched-beat-20260302T0900Z"]
    assert started(tick(project, "2026-03-02T09:01:00Z")) == []  # a retried tick: nothing new
    assert started(tick(project, "2026-03-02T09:14:59Z")) == []
    report = tick(project, "2026-03-02T09:15:00Z")
    assert report["advanced"] == [{"run_id": "sched-beat-20260302T0915Z", "step": None,
                                   "reason": "schedule", "status": "completed"}]
    assert as_json(project, "show", "sched-beat-20260302T0915Z")["output"] == \
        "sched-beat-20260302T0915Z"
    assert runs(project) == ["sched-beat-20260302T0900Z", "sched-beat-20260302T0915Z"]


def test_every_of_seconds_names_runs_to_the_second(project: Project) -> None:
    scheduled(project, "every: 90s")
    assert started(tick(project, "2026-03-02T09:00:00Z")) == ["sched-beat-20260302T090000Z"]
    assert started(tick(project, "2026-03-02T09:01:31Z")) == ["sched-beat-20260302T090130Z"]


def test_a_new_schedule_fires_from_the_first_tick_that_sees_it(project: Project) -> None:
    scheduled(project, "every: 15m")
    # 09:00 was 10 minutes before the first tick that saw the schedule: not caught up
    assert started(tick(project, "2026-03-02T09:10:00Z")) == []
    assert project.store().schedule_state("beat")[0] is not None  # the sighting is recorded
    assert started(tick(project, "2026-03-02T09:15:30Z")) == ["sched-beat-20260302T0915Z"]


def test_a_tick_now_in_the_future_handles_the_fire_times_up_to_then_for_good(
        project: Project) -> None:
    """What docs/operating.md warns of: after a `tick --now` a day ahead, the fire times of that
    day do not fire when they really come, and the run it started is stamped with its time."""
    scheduled(project, "every: 1h, catchup: all")
    assert started(tick(project, "2026-03-02T09:00:10Z")) == ["sched-beat-20260302T0900Z"]
    ahead = started(tick(project, "2026-03-03T09:00:10Z"))  # `tick --now +1d`
    assert len(ahead) == 24 and ahead[-1] == "sched-beat-20260303T0900Z"
    doc = as_json(project, "show", "sched-beat-20260303T0900Z")
    assert doc["created_at"].startswith("2026-03-03T09:00:10")
    for real in ("2026-03-02T10:00:10Z", "2026-03-02T15:30:00Z", "2026-03-03T09:00:10Z"):
        assert started(tick(project, real)) == [], real  # the hours in between: handled
    assert started(tick(project, "2026-03-03T10:00:10Z")) == ["sched-beat-20260303T1000Z"]
    said = " ".join((REPO / "docs" / "operating.md").read_text().split())
    assert "those fire times do **not** fire again when that time really comes" in said
    assert "not use it for a demonstration on a live state directory" in said


def test_a_run_that_exists_already_counts_as_started(project: Project) -> None:
    """A tick that created the run and died before recording it: the next one starts nothing."""
    scheduled(project, "every: 15m")
    assert started(tick(project, "2026-03-02T08:58:00Z")) == []  # the schedule is seen
    assert run(project, "start", "beat", "--run-id", "sched-beat-20260302T0900Z").code == 0
    assert started(tick(project, "2026-03-02T09:00:10Z")) == []
    assert runs(project) == ["sched-beat-20260302T0900Z"]
    row = listing(project, "2026-03-02T09:00:10Z")["beat"]
    assert (row["last_run"], row["next_fire"]) == ("sched-beat-20260302T0900Z",
                                                   "2026-03-02T09:15:00.000Z")


# -- catch-up ----------------------------------------------------------------------------------

@pytest.mark.parametrize(("catchup", "expected"), [
    ("latest", ["sched-beat-20260302T1100Z"]),
    ("all", ["sched-beat-20260302T1000Z", "sched-beat-20260302T1100Z"]),
    ("none", []),
])
def test_a_missed_hour_is_caught_up_per_catchup(project: Project, catchup: str,
                                                 expected: list[str]) -> None:
    scheduled(project, f'cron: "0 * * * *", catchup: {catchup}')
    assert started(tick(project, "2026-03-02T09:00:30Z")) == ["sched-beat-20260302T0900Z"]
    # nothing ticked from 09:00:30 to 11:30: 10:00 and 11:00 were missed
    assert started(tick(project, "2026-03-02T11:30:00Z")) == expected
    assert started(tick(project, "2026-03-02T11:59:00Z")) == []
    assert started(tick(project, "2026-03-02T12:04:00Z")) == ["sched-beat-20260302T1200Z"]


@pytest.mark.parametrize("catchup", ["all", "latest"])
def test_a_schedule_whose_timetable_changed_has_missed_nothing(
        project: Project, catchup: str) -> None:
    scheduled(project, f"every: 1h, catchup: {catchup}")
    for now in ("2026-05-01T10:00:30Z", "2026-05-01T10:20:00Z", "2026-05-01T10:49:30Z"):
        tick(project, now)
    assert runs(project) == ["sched-beat-20260501T1000Z"]
    scheduled(project, f"every: 1m, catchup: {catchup}")  # was hourly: not 50 missed minutes
    assert started(tick(project, "2026-05-01T10:50:30Z")) == ["sched-beat-20260501T1050Z"]
    assert started(tick(project, "2026-05-01T10:51:30Z")) == ["sched-beat-20260501T1051Z"]
    scheduled(project, f'cron: "0 10 * * *", catchup: {catchup}')  # 10:00 passed before it
    assert started(tick(project, "2026-05-01T12:00:00Z")) == []
    assert listing(project, "2026-05-01T12:00:00Z")["beat"]["next_fire"].startswith("2026-05-02T10:00")


def test_a_scheduled_run_that_cannot_start_is_a_schedule_error_of_its_workflow(
        project: Project) -> None:
    project.workflow("beat", "schedule: {every: 1h}\nsteps:\n  - id: beat\n",
                     "def beat(ctx:\n")  # a module that does not import
    out = run(project, "tick", "--json", "--now", "2026-08-01T12:00:00Z")
    assert out.code == 1
    [error] = out.json()["errors"]
    assert error["run_id"] is None and error["workflow"] == "beat"
    assert "sched-beat-20260801T1200Z" in error["message"] and "beat.py" in error["message"]
    assert runs(project) == []


def test_catchup_all_starts_at_most_100_runs_a_tick(project: Project) -> None:
    scheduled(project, "every: 1m, catchup: all")
    assert started(tick(project, "2026-03-02T09:00:00Z")) == ["sched-beat-20260302T0900Z"]
    out = run(project, "tick", "--now", "2026-03-02T10:45:00Z", "--json")
    first = started(out.json())
    assert (len(first), first[0], first[-1]) == (100, "sched-beat-20260302T0901Z",
                                                 "sched-beat-20260302T1040Z")
    assert "over 100 fire times were missed" in out.stderr and "catchup: all" in out.stderr
    rest = started(tick(project, "2026-03-02T10:45:00Z"))
    assert rest == [f"sched-beat-20260302T{m}Z" for m in ("1041", "1042", "1043", "1044", "1045")]
    assert len(runs(project)) == 106


# -- time zones --------------------------------------------------------------------------------

def tick_through(project: Project, start: str, end: str, step_minutes: int) -> list[str]:
    """Tick every STEP minutes from START to END (UTC, whole minutes); the runs started."""
    from datetime import datetime, timedelta

    moment = datetime.fromisoformat(start.replace("Z", "+00:00"))
    stop = datetime.fromisoformat(end.replace("Z", "+00:00"))
    found: list[str] = []
    while moment <= stop:
        found += started(tick(project, moment.strftime("%Y-%m-%dT%H:%M:%SZ")))
        moment += timedelta(minutes=step_minutes)
    return found


def test_a_0230_schedule_fires_once_on_the_spring_forward_night(project: Project) -> None:
    """2026-03-29 in Berlin: clocks go from 02:00 to 03:00, so 02:30 never happens; the day's
    run starts right after the gap, at 03:00 CEST (01:00 UTC), once."""
    scheduled(project, 'cron: "30 2 * * *", timezone: Europe/Berlin')
    assert tick_through(project, "2026-03-28T01:00:00Z", "2026-03-28T02:00:00Z", 30) == \
        ["sched-beat-20260328T0130Z"]  # 02:30 CET the day before
    row = listing(project, "2026-03-28T12:00:00Z")["beat"]
    assert (row["next_fire"], row["next_fire_local"]) == ("2026-03-29T01:00:00.000Z",
                                                          "2026-03-29T03:00:00+02:00")
    assert tick_through(project, "2026-03-28T23:00:00Z", "2026-03-29T06:00:00Z", 30) == \
        ["sched-beat-20260329T0100Z"]
    row = listing(project, "2026-03-29T06:00:00Z")["beat"]
    assert (row["next_fire"], row["next_fire_local"]) == ("2026-03-30T00:30:00.000Z",
                                                          "2026-03-30T02:30:00+02:00")


def test_a_0230_schedule_fires_once_in_the_repeated_autumn_hour(project: Project) -> None:
    """2026-10-25 in Berlin: 02:00-03:00 happens twice (CEST, then CET); 02:30 fires once, at
    its first occurrence (00:30 UTC), and the next day at 02:30 CET (01:30 UTC)."""
    scheduled(project, 'cron: "30 2 * * *", timezone: Europe/Berlin')
    assert tick_through(project, "2026-10-24T22:00:00Z", "2026-10-25T04:00:00Z", 15) == \
        ["sched-beat-20261025T0030Z"]
    row = listing(project, "2026-10-25T04:00:00Z")["beat"]
    assert (row["next_fire"], row["next_fire_local"]) == ("2026-10-26T01:30:00.000Z",
                                                          "2026-10-26T02:30:00+01:00")
    assert tick_through(project, "2026-10-26T01:00:00Z", "2026-10-26T02:00:00Z", 30) == \
        ["sched-beat-20261026T0130Z"]


def test_an_hourly_schedule_fires_every_real_hour_of_the_autumn_night(project: Project) -> None:
    scheduled(project, 'cron: "0 * * * *", timezone: Europe/Berlin')
    # 00:00, 01:00, 02:00 CEST, then 02:00, 03:00, 04:00 CET in Berlin: one run per real hour
    assert tick_through(project, "2026-10-24T21:30:00Z", "2026-10-25T03:00:00Z", 30) == [
        "sched-beat-20261024T2200Z", "sched-beat-20261024T2300Z", "sched-beat-20261025T0000Z",
        "sched-beat-20261025T0100Z", "sched-beat-20261025T0200Z", "sched-beat-20261025T0300Z"]


# -- overlap -----------------------------------------------------------------------------------

def long_running(project: Project, overlap: str) -> None:
    """An hourly workflow whose runs wait for a person (a previous run still unfinished)."""
    project.workflow("gate", f"""
        schedule: {{every: 1h, overlap: {overlap}}}
        steps:
          - id: prepare
          - id: approve
            wait: true
            timeout: 7d
    """, "def prepare(ctx):\n    return 1\n")
    assert started(tick(project, "2026-03-02T09:00:30Z")) == ["sched-gate-20260302T0900Z"]
    assert as_json(project, "show", "sched-gate-20260302T0900Z")["status"] == "suspended"


def _claim_without_run(project: Project, fire: str, run_id: str) -> None:
    """The schedule state as a tick leaves it between claiming a fire time and creating its
    run (`_timetable._start`): the next fire's tick sees the claim, not yet the run."""
    store = project.store()
    state, revision = store.schedule_state("gate")
    assert state is not None
    store.save_schedule_state("gate", {**state, "last_fire": fire, "last_run": run_id,
                                       "through": fire}, revision)


@pytest.mark.parametrize("overlap", ["skip", "cancel_previous"])
def test_overlap_sees_the_run_a_concurrent_tick_is_starting(project: Project,
                                                            overlap: str) -> None:
    """A tick that claimed 10:00 creates its run while the 11:00 tick looks at it: the claimed
    run counts once it appears (looked for up to a second), not as no previous run."""
    long_running(project, overlap)
    assert run(project, "cancel", "sched-gate-20260302T0900Z").code == 0
    _claim_without_run(project, "2026-03-02T10:00:00.000Z", "sched-gate-20260302T1000Z")
    creator = threading.Timer(0.2, lambda: Engine(
        FileStore(project.state), SystemClock(), workflows_dir=str(project.workflows)).start(
        "gate", run_id="sched-gate-20260302T1000Z"))  # as the other tick's process would
    creator.start()
    try:
        report = tick(project, "2026-03-02T11:00:30Z")
    finally:
        creator.join()
    statuses = {r: as_json(project, "show", r)["status"] for r in runs(project, "gate")}
    if overlap == "skip":
        assert started(report) == []
        assert statuses == {"sched-gate-20260302T0900Z": "cancelled",
                            "sched-gate-20260302T1000Z": "suspended"}
    else:
        assert started(report) == ["sched-gate-20260302T1100Z"]
        assert statuses == {"sched-gate-20260302T0900Z": "cancelled",
                            "sched-gate-20260302T1000Z": "cancelled",
                            "sched-gate-20260302T1100Z": "suspended"}


def test_an_earlier_fire_time_than_one_a_tick_ahead_started_is_not_started(
        project: Project) -> None:
    """With `catchup: all`, a tick behind another (its fire times' list read before the other
    claimed a later one) meets a later fire time's run: it starts no earlier one beside it."""
    long_running(project, "skip")
    assert run(project, "resume", "sched-gate-20260302T0900Z").code == 0  # finished
    store = project.store()
    state, revision = store.schedule_state("gate")
    assert state is not None
    assert run(project, "start", "gate", "--run-id", "sched-gate-20260302T1200Z").code == 0
    assert run(project, "resume", "sched-gate-20260302T1200Z").code == 0  # finished too
    # the tick ahead claimed 12:00 (and started it) without having saved its `through` yet
    store.save_schedule_state("gate", {**state, "last_fire": "2026-03-02T12:00:00.000Z",
                                       "last_run": "sched-gate-20260302T1200Z"}, revision)
    assert started(tick(project, "2026-03-02T10:00:30Z")) == []
    assert runs(project, "gate") == ["sched-gate-20260302T0900Z", "sched-gate-20260302T1200Z"]
    row = listing(project, "2026-03-02T10:00:30Z")["gate"]
    assert row["last_skip"]["fire"] == "2026-03-02T10:00:00.000Z"


def test_overlap_skip_starts_nothing_while_the_previous_run_is_unfinished(
        project: Project) -> None:
    long_running(project, "skip")
    assert started(tick(project, "2026-03-02T10:00:30Z")) == []
    row = listing(project, "2026-03-02T10:00:30Z")["gate"]
    assert row["last_skip"] == {"fire": "2026-03-02T10:00:00.000Z",
                                "run_id": "sched-gate-20260302T0900Z",
                                "reason": "run sched-gate-20260302T0900Z was suspended "
                                          "(overlap: skip)"}
    human = run(project, "schedules", "--now", "2026-03-02T10:00:30Z")
    assert "gate: the run for 2026-03-02T10:00:00Z was skipped: run sched-gate-20260302T0900Z " \
           "was suspended (overlap: skip)" in human.stdout
    assert run(project, "resume", "sched-gate-20260302T0900Z").code == 0  # it completes
    assert started(tick(project, "2026-03-02T11:00:30Z")) == ["sched-gate-20260302T1100Z"]
    assert runs(project, "gate") == ["sched-gate-20260302T0900Z", "sched-gate-20260302T1100Z"]


def test_overlap_allow_starts_beside_the_previous_run(project: Project) -> None:
    long_running(project, "allow")
    assert started(tick(project, "2026-03-02T10:00:30Z")) == ["sched-gate-20260302T1000Z"]
    statuses = [as_json(project, "show", r)["status"] for r in runs(project, "gate")]
    assert statuses == ["suspended", "suspended"]


def test_overlap_cancel_previous_cancels_it_then_starts(project: Project) -> None:
    long_running(project, "cancel_previous")
    assert started(tick(project, "2026-03-02T10:00:30Z")) == ["sched-gate-20260302T1000Z"]
    previous = as_json(project, "show", "sched-gate-20260302T0900Z")
    assert previous["status"] == "cancelled"
    [cancelled] = [e for e in previous["history"] if e["type"] == "cancelled"]
    assert "sched-gate-20260302T1000Z" in cancelled["reason"]
    assert as_json(project, "show", "sched-gate-20260302T1000Z")["status"] == "suspended"


# -- several ticks at once ---------------------------------------------------------------------

def test_overlapping_tick_processes_start_one_run(project: Project) -> None:
    project.workflow("slow", """
        schedule: {every: 1h}
        steps:
          - id: work
    """, "import time\n\ndef work(ctx):\n    time.sleep(0.5)\n    return ctx.run_id\n")
    assert project.cli("tick", "--now", "2026-03-02T08:58:00Z").code == 0  # seen: nothing due
    argv = [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--now",
            "2026-03-02T09:00:05Z", "--json"]
    procs = [subprocess.Popen(argv, cwd=project.root, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(3)]
    outs = [proc.communicate(timeout=60) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0], outs
    reports = [json.loads(stdout) for stdout, _ in outs]
    assert [run_id for r in reports for run_id in started(r)] == ["sched-slow-20260302T0900Z"]
    assert runs(project, "slow") == ["sched-slow-20260302T0900Z"]
    history = as_json(project, "show", "sched-slow-20260302T0900Z")["history"]
    assert [e["type"] for e in history].count("started") == 1
    assert as_json(project, "show", "sched-slow-20260302T0900Z")["status"] == "completed"


HELD = """\
import os
import time


def work(ctx):
    hold = os.path.join(os.path.dirname(__file__), "HOLD")
    started = os.path.join(os.path.dirname(__file__), "STARTED-" + ctx.run_id)
    open(started, "w").close()
    deadline = time.monotonic() + 30
    while ctx.run_id.endswith("T1000Z") and os.path.exists(hold) \\
            and time.monotonic() < deadline:  # (only the 10:00 run is slow)
        time.sleep(0.02)
    return ctx.run_id
"""


@pytest.mark.parametrize("overlap", ["skip", "cancel_previous"])
def test_a_tick_overlapping_one_still_executing_the_previous_run_applies_overlap(
        project: Project, overlap: str) -> None:
    project.workflow("slow", f"""
        schedule: {{every: 1m, overlap: {overlap}}}
        steps:
          - id: work
    """, HELD)
    assert project.cli("tick", "--now", "2026-09-01T09:59:05Z").code == 0  # 09:59, done
    (project.workflows / "HOLD").touch()
    argv = [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--json", "--now"]
    first = subprocess.Popen([*argv, "2026-09-01T10:00:05Z"], cwd=project.root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        marker = project.workflows / "STARTED-sched-slow-20260901T1000Z"
        for _ in range(1500):  # the 10:00 run executes in the first tick (30 s at most)
            if marker.exists() or first.poll() is not None:
                break
            time.sleep(0.02)
        assert marker.exists(), first.communicate()
        second = run(project, "tick", "--json", "--now", "2026-09-01T10:01:05Z")
    finally:
        (project.workflows / "HOLD").unlink()
        out, err = first.communicate(timeout=60)
    assert first.returncode == 0, err
    assert started(json.loads(out)) == ["sched-slow-20260901T1000Z"]
    if overlap == "skip":
        assert second.code == 0 and started(second.json()) == [], second.stdout
        assert runs(project, "slow") == ["sched-slow-20260901T0959Z", "sched-slow-20260901T1000Z"]
        skip = listing(project, "2026-09-01T10:01:30Z")["slow"]
        assert "sched-slow-20260901T1000Z" in json.dumps(skip)
    else:  # the 10:00 run was cancelled while its step executed, the 10:01 one started
        assert started(second.json()) == ["sched-slow-20260901T1001Z"]
        assert as_json(project, "show", "sched-slow-20260901T1000Z")["status"] == "cancelled"


def test_overlapping_tick_processes_start_one_run_on_postgresql(project: Project) -> None:
    import _pg

    project.workflow("slow", """
        schedule: {every: 1h}
        steps:
          - id: work
    """, "import time\n\ndef work(ctx):\n    time.sleep(0.3)\n    return ctx.run_id\n")
    with _pg.schema() as url:
        argv = [sys.executable, "-m", "wfrun", "--store", url, "--workflows-dir",
                str(project.workflows)]
        seen = subprocess.run([*argv, "tick", "--now", "2026-03-02T08:58:00Z"],
                              capture_output=True, text=True, timeout=60)
        assert seen.returncode == 0, seen.stderr
        procs = [subprocess.Popen([*argv, "tick", "--now", "2026-03-02T09:00:05Z", "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(3)]
        outs = [proc.communicate(timeout=60) for proc in procs]
        assert [proc.returncode for proc in procs] == [0, 0, 0], outs
        assert [r for stdout, _ in outs for r in started(json.loads(stdout))] == \
            ["sched-slow-20260302T0900Z"]
        listed = subprocess.run([*argv, "list", "--all", "--json"], capture_output=True,
                                text=True, timeout=60)
        assert [(r["run_id"], r["status"]) for r in json.loads(listed.stdout)] == \
            [("sched-slow-20260302T0900Z", "completed")]


# -- wfrun schedules: listing, pause, unpause ----------------------------------------------------

def test_schedules_lists_next_fire_times_in_utc_and_local_time(project: Project) -> None:
    scheduled(project, 'cron: "0 9 * * 1-5", timezone: Europe/Berlin, input: {n: 1}',
              name="report")
    scheduled(project, "every: 15m")
    project.workflow("plain", "steps:\n  - id: beat\n", BEAT)
    rows = as_json(project, "schedules", "--now", "2026-03-06T12:07:00Z")  # a Friday
    assert [r["workflow"] for r in rows] == ["beat", "report"]
    report = rows[1]
    assert {k: report[k] for k in ("cron", "every", "timezone", "input", "overlap", "catchup",
                                   "paused", "next_fire", "next_fire_local", "last_run")} == {
        "cron": "0 9 * * 1-5", "every": None, "timezone": "Europe/Berlin", "input": {"n": 1},
        "overlap": "skip", "catchup": "latest", "paused": False,
        "next_fire": "2026-03-09T08:00:00.000Z",  # Monday, 09:00 CET
        "next_fire_local": "2026-03-09T09:00:00+01:00", "last_run": None}
    assert rows[0]["every"] == "15m" and rows[0]["next_fire"] == "2026-03-06T12:15:00.000Z"
    human = run(project, "schedules", "--now", "2026-03-06T12:07:00Z")
    assert human.code == 0
    line = next(line for line in human.stdout.splitlines() if line.startswith("report"))
    assert line.split() == ["report", "cron", "0", "9", "*", "*", "1-5", "2026-03-09T08:00:00Z",
                            "2026-03-09T09:00:00+01:00", "Europe/Berlin", "-"]


def test_no_schedules_says_so(project: Project) -> None:
    project.workflow("plain", "steps:\n  - id: beat\n", BEAT)
    out = run(project, "schedules")
    assert (out.code, out.stdout.strip()) == (0, f"no schedules in {project.workflows}")
    assert as_json(project, "schedules") == []


def test_a_paused_schedule_fires_nothing_and_unpausing_skips_the_paused_time(
        project: Project) -> None:
    scheduled(project, "every: 15m")
    assert started(tick(project, "2026-03-02T09:00:30Z")) == ["sched-beat-20260302T0900Z"]
    out = run(project, "schedules", "pause", "beat", "--now", "2026-03-02T09:05:00Z")
    assert out.code == 0
    assert out.stdout.strip() == ("Paused the schedule of beat: tick starts no run of it until "
                                  f"'wfrun --state-dir {project.state} schedules unpause beat'.")
    again = run(project, "schedules", "pause", "beat")
    assert (again.code, again.stdout.strip()) == (0, "The schedule of beat is already paused.")
    assert listing(project, "2026-03-02T09:20:00Z")["beat"]["paused"] is True
    assert started(tick(project, "2026-03-02T09:15:30Z")) == []
    assert started(tick(project, "2026-03-02T09:30:30Z")) == []
    row = as_json(project, "schedules", "unpause", "beat", "--now", "2026-03-02T09:40:00Z")
    assert (row["paused"], row["next_fire"]) == (False, "2026-03-02T09:45:00.000Z")
    # 09:15 and 09:30 fell in the paused time: not caught up, whatever catchup says
    assert started(tick(project, "2026-03-02T09:40:30Z")) == []
    assert started(tick(project, "2026-03-02T09:45:30Z")) == ["sched-beat-20260302T0945Z"]
    assert runs(project) == ["sched-beat-20260302T0900Z", "sched-beat-20260302T0945Z"]


def test_pausing_before_any_tick_keeps_the_schedule_quiet(project: Project) -> None:
    scheduled(project, "every: 15m")
    assert run(project, "schedules", "pause", "beat").code == 0  # creates the state directory
    assert started(tick(project, "2099-01-01T00:00:10Z")) == []


@pytest.mark.parametrize(("args", "code", "words"), [
    (["pause"], 2, "needs the workflow"),
    (["stop", "beat"], 2, "unknown action 'stop'"),
    (["beat"], 2, "unknown action 'beat'"),
    (["pause", "plain"], 4, "workflow 'plain' has no schedule"),
    (["unpause", "nope"], 4, "no workflow 'nope'"),
])
def test_schedules_usage_errors(project: Project, args: list[str], code: int, words: str) -> None:
    scheduled(project, "every: 15m")
    project.workflow("plain", "steps:\n  - id: beat\n", BEAT)
    out = run(project, "schedules", *args)
    assert out.code == code and words in out.stderr, out
    assert len(out.stderr.strip().splitlines()) == 1


def test_a_command_in_a_sentence_keeps_its_own_quoting(project: Project, tmp_path: Path) -> None:
    scheduled(project, "every: 15m")
    state = tmp_path / "my state"  # shell-quoted in the commands wfrun suggests

    def invoke(*args: str) -> Any:
        argv = ["--state-dir", str(state), "--workflows-dir", str(project.workflows), *args]
        return CliRunner().invoke(app_for(argv), argv)

    out = invoke("schedules", "pause", "beat")
    assert out.exit_code == 0, out.output
    command = f"wfrun --state-dir '{state}' schedules unpause beat"
    assert out.stdout.strip() == ("Paused the schedule of beat: tick starts no run of it until "
                                  f'"{command}".')
    refused = invoke("schedules", "stop")
    assert refused.exit_code == 2
    assert f"\"wfrun --state-dir '{state}' schedules\" lists the schedules" in refused.stderr


# -- manifest errors ---------------------------------------------------------------------------

@pytest.mark.parametrize(("schedule", "words"), [
    ("'every 15m'", "must be a mapping"),
    ("{cron: '0 9 * * *', every: 1h}", "needs either 'cron' or 'every'"),
    ("{timezone: UTC}", "needs either 'cron' or 'every'"),
    ("{cron: '0 9 * *'}", "is not a cron expression of 5 fields"),
    ("{cron: '0 0 9 * * 1-5'}", "is not a cron expression of 5 fields"),
    ("{cron: '61 9 * * *'}", "is not a valid cron expression: out of range"),
    ("{cron: '0 0 31 2 *'}", "never fires"),
    ("{cron: '0 9 * * *', timezone: Mars/Olympus}", "'Mars/Olympus' is not a known IANA time zone"),
    ("{cron: '0 9 * * *', timezone: ../../etc/passwd}", "is not a known IANA time zone"),
    ("{every: 10 minutes}", "every: '10 minutes' is not a duration"),
    ("{every: 500ms}", "must be a whole number of seconds, at least 1s"),
    ("{every: 1h, timezone: Europe/Berlin}", "applies to 'cron' only"),
    ("{every: 1h, overlap: never}", "overlap: must be one of skip, allow, cancel_previous"),
    ("{every: 1h, overlap: no}", "quote it"),
    ("{every: 1h, catchup: some}", "catchup: must be one of latest, all, none"),
    ("{every: 1h, start: now}", "unknown key 'start'"),
    ("{every: 1h, input: {day: 2026-01-01}}", "input: must be JSON data"),
    ("{every: 1h, input: {n: one}}", "input: the schedule's input is not valid"),
])
def test_invalid_schedules_are_manifest_errors(project: Project, schedule: str,
                                               words: str) -> None:
    path = project.workflow("bad", f"""
        schedule: {schedule}
        input_schema: {{type: object, properties: {{n: {{type: integer}}}}}}
        steps:
          - id: beat
    """, BEAT)
    for command in (["validate", "bad"], ["start", "bad"]):
        out = run(project, *command)
        assert out.code == 2, (command, out)
        assert f"{path}: key 'schedule': " in out.stderr and words in out.stderr, out.stderr
    assert not project.state.exists()


def test_a_tick_names_a_scheduled_manifest_that_cannot_be_loaded(project: Project) -> None:
    scheduled(project, "every: 15m")
    project.workflow("broken", "schedule: {every: 15m}\nsteps: []\n", BEAT)
    out = run(project, "tick", "--now", "2026-03-02T09:00:30Z", "--json")
    assert out.code == 1
    assert "error: workflow broken: " in out.stderr and "its schedule cannot fire" in out.stderr
    report = out.json()
    assert started(report) == ["sched-beat-20260302T0900Z"]  # the others fire all the same
    assert report["errors"][0]["run_id"] is None and report["errors"][0]["workflow"] == "broken"


@pytest.mark.parametrize("damage", [
    {"through": "garbage", "last_fire": 5},
    {"through": "2026-03-02T09:00:00.000Z", "paused": "yes"},
    {"through": "2026-03-02T09:00:00.000Z", "last_skip": {"fire": None}},
])
def test_a_damaged_schedule_state_is_reported_by_tick_schedules_and_doctor(
        project: Project, damage: dict[str, Any]) -> None:
    from conftest import file_store

    scheduled(project, "every: 15m")
    tick(project, "2026-03-02T09:01:00Z")
    store = file_store(project.state)
    _state, revision = store.schedule_state("beat")
    store.save_schedule_state("beat", damage, revision)  # a valid file: only wfrun can tell
    fired = run(project, "tick", "--now", "2026-03-02T10:01:00Z", "--json")
    assert fired.code == 1 and "Traceback" not in fired.stderr
    [error] = fired.json()["errors"]
    assert error["workflow"] == "beat" and "schedule state of workflow 'beat' is damaged" in \
        error["message"]
    listed = run(project, "schedules", "--json")
    assert listed.code == 5 and "Traceback" not in listed.stderr
    assert "is damaged" in listed.json()[0]["error"]
    human = run(project, "schedules")
    assert human.code == 5 and "Traceback" not in human.stderr and "is damaged" in human.stderr
    checked = run(project, "doctor", "--json")
    assert checked.code == 5
    assert [(p["kind"], p["path"]) for p in checked.json()["problems"]] == [
        ("schedule", "schedule of workflow 'beat'")]
    said = run(project, "doctor")  # the line names the schedule once, as its reason does
    assert said.code == 5 and said.stdout.splitlines()[0] == checked.json()["problems"][0]["reason"]
    assert said.stdout.count("workflow 'beat'") == 1, said.stdout
    assert store.schedule_state("beat") == (damage, revision + 1)  # nothing acted on it


def test_doctor_reports_a_schedule_state_file_edited_by_hand(project: Project) -> None:
    scheduled(project, "every: 15m")
    tick(project, "2026-03-02T09:01:00Z")
    path = project.state / "schedules" / "beat.json"
    path.write_text(path.read_text().replace('"every 15m"', '"every 20m"'))
    checked = run(project, "doctor", "--json")
    assert checked.code == 5
    [problem] = checked.json()["problems"]
    assert problem["kind"] == "schedule" and "does not verify" in problem["reason"]


def test_a_scheduled_run_whose_start_fails_is_tried_again(project: Project) -> None:
    scheduled(project, "every: 15m", extra="input_schema: {type: object, required: [n]}\n")
    # the manifest's own check refuses this at validate; tick reports it and changes nothing
    out = run(project, "tick", "--now", "2026-03-02T09:00:30Z", "--json")
    assert out.code == 1 and "sched-beat-20260302T0900Z" in out.stderr
    assert runs(project) == []
    scheduled(project, "every: 15m, input: {n: 1}",
              extra="input_schema: {type: object, required: [n]}\n")
    assert started(tick(project, "2026-03-02T09:01:00Z")) == ["sched-beat-20260302T0900Z"]


# -- run ids -----------------------------------------------------------------------------------

def test_long_workflow_names_give_valid_distinct_run_ids(project: Project) -> None:
    names = ["a" * 60 + "-one", "a" * 60 + "-two"]
    for name in names:
        scheduled(project, "every: 15m", name=name)
    found = started(tick(project, "2026-03-02T09:00:30Z"))
    assert len(set(found)) == 2
    for run_id in found:
        assert len(run_id) <= 64 and RUN_ID_PATTERN.fullmatch(run_id), run_id
        assert run_id.startswith("sched-aaaa") and run_id.endswith("-20260302T0900Z")


# -- cost --------------------------------------------------------------------------------------

WRAPPER = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["wfrun", *sys.argv[2:]]
runpy.run_module("wfrun", run_name="__main__")
"""


def test_a_tick_with_nothing_due_reads_the_state_and_nothing_more(project: Project,
                                                                  tmp_path: Path) -> None:
    scheduled(project, 'cron: "0 9 * * *", timezone: Europe/Berlin')
    assert started(tick(project, "2026-03-02T08:00:30Z")) == ["sched-beat-20260302T0800Z"]
    before = project.snapshots()
    record = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(record), *project.base_args(),
                           "tick", "--now", "2026-03-02T12:00:00Z"],
                          capture_output=True, text=True, timeout=60, cwd=project.root)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "", "")
    modules = json.loads(record.read_text())
    assert [m for m in modules if m.split(".")[0] in ("croniter", "dateutil", "zoneinfo", "yaml")
            or m == "wfrun._firetimes"] == []
    assert "wfrun.engine._timetable" in modules
    assert project.snapshots() == before  # nothing written


def test_resuming_a_run_of_a_scheduled_workflow_loads_no_cron_library(project: Project,
                                                                        tmp_path: Path) -> None:
    project.workflow("gate", """
        schedule: {cron: "0 9 * * *", timezone: Europe/Berlin}
        steps:
          - id: approve
            wait: true
    """)
    run_id = as_json(project, "start", "gate")["run_id"]
    record = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(record), *project.base_args(),
                           "resume", run_id], capture_output=True, text=True, timeout=60,
                          cwd=project.root)
    assert proc.returncode == 0 and "is completed" in proc.stdout, proc.stderr
    modules = json.loads(record.read_text())
    assert [m for m in modules if m.split(".")[0] in ("croniter", "dateutil", "zoneinfo")
            or m in ("wfrun._firetimes", "wfrun.engine._timetable")] == []


# -- the state directory -----------------------------------------------------------------------

def test_tick_in_a_new_project_with_a_schedule_makes_the_state_directory(
        project: Project) -> None:
    """The file store's own files: the state directory and the schedule's state file a first
    tick makes are private."""
    scheduled(project, "every: 15m")
    out = run(project, "tick", "--now", "2026-03-02T09:00:30Z")
    assert out.code == 0 and f"state directory {project.state} did not exist" in out.stderr
    assert out.stdout.split() == ["sched-beat-20260302T0900Z", "-", "schedule", "->", "completed"]
    assert project.state.stat().st_mode & 0o777 == 0o700
    schedules = project.state / "schedules"
    assert schedules.stat().st_mode & 0o777 == 0o700
    assert (schedules / "beat.json").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize("as_json", [False, True])
def test_tick_says_once_that_it_created_a_state_directory_for_the_schedules(
        project: Project, as_json: bool) -> None:
    """A mistyped --state-dir in cron must not silently start a second store (SPEC §5): the
    tick that makes it says so, in one line naming the directory and the schedules' workflows."""
    scheduled(project, "every: 15m")
    scheduled(project, "every: 1h", name="hourly")
    typo = project.root / "srv" / "app" / ".wfstat"
    # (a time no fire time is near: a new schedule fires only what is due right then)
    args = ["--state-dir", str(typo), "tick", "--now", "2026-03-02T09:07:00Z",
            *(["--json"] if as_json else [])]
    out = run(project, *args)
    assert out.code == 0 and typo.is_dir()
    [line] = out.stderr.splitlines()
    assert line.startswith(f"warning: state directory {typo} did not exist; tick created it "
                           "to keep the schedules of workflows beat, hourly"), line
    assert "--state-dir" in line and "WFRUN_STATE_DIR" in line
    if as_json:
        assert out.json() == {"advanced": [], "errors": []}
    again = run(project, *args)
    assert again.code == 0 and again.stderr == ""  # once: it exists now


def test_tick_whose_schedules_cannot_load_says_the_state_directory_does_not_exist(
        project: Project) -> None:
    project.workflow("broken", "schedule: {every: 0m}\nsteps:\n  - id: beat\n", BEAT)
    out = run(project, "tick")
    assert out.code == 1 and not project.state.exists()
    assert f"warning: state directory {project.state} does not exist" in out.stderr
    assert "did not exist" not in out.stderr


def test_tick_without_a_state_directory_or_a_schedule_still_warns(project: Project) -> None:
    project.workflow("plain", "steps:\n  - id: beat\n", BEAT)
    out = run(project, "tick")
    assert out.code == 0 and "does not exist" in out.stderr
    assert not project.state.exists()


# -- the example -------------------------------------------------------------------------------

def use_daily_report(project: Project) -> None:
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"daily-report{suffix}", project.workflows)


def test_daily_report_runs_at_nine_berlin_time_on_weekdays(project: Project) -> None:
    use_daily_report(project)
    assert run(project, "validate", "daily-report").code == 0
    assert started(tick(project, "2026-03-02T07:59:00Z")) == []  # Monday, 08:59 in Berlin
    assert started(tick(project, "2026-03-02T08:00:20Z")) == ["sched-daily-report-20260302T0800Z"]
    doc = as_json(project, "show", "sched-daily-report-20260302T0800Z")
    assert (doc["status"], doc["input"], doc["output"]) == (
        "completed", {"team": "sales", "to": ["ann@example.com"]},
        {"sent_to": ["ann@example.com"], "report": "sales on 2026-03-02: 60 orders"})
    assert started(tick(project, "2026-03-06T08:00:30Z")) == ["sched-daily-report-20260306T0800Z"]
    # the weekend passes quietly (Friday 10:00 to Monday 08:00 UTC, a tick every 2 hours)
    assert tick_through(project, "2026-03-06T10:00:00Z", "2026-03-09T08:00:00Z", 120) == \
        ["sched-daily-report-20260309T0800Z"]
    # in summer, 09:00 in Berlin is 07:00 UTC
    assert started(tick(project, "2026-07-06T07:00:30Z")) == ["sched-daily-report-20260706T0700Z"]


def test_daily_report_starts_by_hand_too(project: Project, tmp_path: Path) -> None:
    use_daily_report(project)
    outbox = tmp_path / "outbox.txt"
    doc = as_json(project, "start", "daily-report", "--input",
                       json.dumps({"team": "ops", "to": ["ann@example.com", "bob@example.com"],
                                   "outbox": str(outbox)}))
    assert doc["output"]["report"] == "ops on today: 36 orders"
    assert outbox.read_text() == ("to ann@example.com: ops on today: 36 orders\n"
                                  "to bob@example.com: ops on today: 36 orders\n")


def test_the_examples_directory_lists_daily_report(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "wfrun", "--workflows-dir",
                           str(REPO / "workflows"), "--state-dir", str(tmp_path / "s"),
                           "schedules", "--json", "--now", "2026-03-02T12:00:00Z"],
                          capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NO_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert [row["workflow"] for row in json.loads(proc.stdout)] == ["daily-report"]


def test_the_first_ticks_of_a_new_schedule_racing_each_other_start_its_run_once(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two ticks see a schedule no tick has seen before (no state saved); the other saves its
    claim of the fire time (which has no `through` yet) between this one's read and save."""
    from wfrun.clock import FakeClock
    from wfrun.engine import Engine
    from wfrun.store.file import FileStore

    scheduled(project, "every: 1h, overlap: allow")
    store = FileStore(project.state)
    engine = Engine(store, FakeClock("2027-01-01T00:00:10Z"),
                    workflows_dir=str(project.workflows))
    saves = store.save_schedule_state

    def other_tick_claims_first(workflow: str, state: dict[str, Any], revision: int) -> int:
        if revision == 0:  # what the other tick's claim saved, before this save
            saves(workflow, {"last_fire": "2027-01-01T00:00:00Z",
                             "last_run": "sched-beat-20270101T0000Z"}, 0)
        return saves(workflow, state, revision)

    monkeypatch.setattr(store, "save_schedule_state", other_tick_claims_first)
    report = engine.tick()
    assert report.errors == [], report.errors
    monkeypatch.undo()
    assert runs(project) == ["sched-beat-20270101T0000Z"]
    [row] = as_json(project, "schedules", "--now", "2027-01-01T00:00:20Z")
    assert row["last_run"] == "sched-beat-20270101T0000Z"
    assert row["next_fire"] == "2027-01-01T01:00:00.000Z"
