"""Messages that say what and where once: `wfrun doctor`'s lines do not repeat the kind or the
path the reason already names ("snapshot: snapshot PATH ..."), and tick's errors do not repeat
the run or workflow the message already names ("run R: run R was taken over ..."). The JSON
keeps every field as it was."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import _pg
import pytest
from conftest import Project
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.cli._ops import _tick_once
from wfrun.engine._result import TickReport

HELLO = ("steps:\n  - id: greet\n", "def greet(ctx):\n    return 1\n")


def _damaged(project: Project) -> dict[str, Path]:
    """Three runs, then a damaged snapshot, a stray file in runs/, a torn history, a snapshot
    others can read and a URL key too short: their paths, by what they are."""
    project.workflow("hello", *HELLO)
    for run_id in ("a1", "b2", "c3"):
        assert project.run("start", "hello", "--run-id", run_id).code == 0
    runs = project.state / "runs"
    paths = {"empty": runs / "a1.json", "stray": runs / "not a run.json",
             "torn": runs / "b2.history.jsonl", "open": runs / "c3.json",
             "key": project.state / "keys" / "url.key"}
    paths["empty"].write_bytes(b"")
    paths["stray"].write_text("{}")
    paths["stray"].chmod(0o600)
    with paths["torn"].open("a") as fh:
        fh.write('{"at": "2026-01-01T00:00:00Z", "type": "lo')
    paths["open"].chmod(0o644)
    paths["key"].parent.mkdir(exist_ok=True, mode=0o700)
    paths["key"].write_bytes(b"short")
    os.chmod(paths["key"], 0o600)
    return paths


def test_doctor_names_each_problem_s_kind_and_path_once(project: Project) -> None:
    paths = _damaged(project)
    out = project.run("doctor")
    assert out.code == 5, out
    lines = out.stdout.splitlines()[:-1]  # then "checked 3 run(s) ..."
    assert sorted(lines) == sorted([
        f"snapshot {paths['empty']} is empty; it is left as it is: restore it from a backup, "
        "or move it out of runs/ with its due entries",
        f"{paths['stray']} is not a run's snapshot ('not a run' is not a valid run id) and is "
        f"skipped; move it out of {paths['stray'].parent}",
        f"{paths['torn']}  history: 1 line(s) are not JSON events (first: line 5); they are "
        "skipped when the history is read",
        f"{paths['open']}  mode 644: group or others can read it (restored from a backup or "
        f"changed by hand; wfrun keeps it 600): run 'chmod 600 {paths['open']}'",
        f"the URL signing key {paths['key']} has 5 byte(s), fewer than the 32 it must have "
        "(damaged, or replaced by hand), and is not used: restore it from a backup, or delete "
        "it to have a new one made (links signed with the old key then stop working)",
    ]), out.stdout
    for kind in ("snapshot", "history", "mode", "key"):
        assert f"{kind}: {kind}" not in out.stdout

    # --json: each problem's path, kind and whole reason, as before
    problems = project.run("doctor", "--json").json()["problems"]
    assert sorted((p["kind"], p["path"]) for p in problems) == sorted([
        ("snapshot", str(paths["empty"])), ("snapshot", str(paths["stray"])),
        ("history", str(paths["torn"])), ("mode", str(paths["open"])),
        ("key", str(paths["key"]))])
    empty = next(p for p in problems if p["path"] == str(paths["empty"]))
    assert empty["reason"].startswith(f"snapshot {paths['empty']} is empty; ")
    mode = next(p for p in problems if p["kind"] == "mode")
    assert mode["reason"].startswith("mode 644: group or others can read it")


@pytest.mark.parametrize(("problem", "line"), [
    # a database store's run: the reason names it first
    ({"path": "postgresql://localhost:5432/test run r1", "kind": "snapshot",
      "reason": "postgresql://localhost:5432/test run r1 is not valid JSON; it is left as it is"},
     "postgresql://localhost:5432/test run r1 is not valid JSON; it is left as it is"),
    ({"path": "/s/runs/r1.json", "kind": "snapshot",
      "reason": "cannot read snapshot /s/runs/r1.json: Permission denied"},
     "cannot read snapshot /s/runs/r1.json: Permission denied"),
    ({"path": "/s/runs/r1.history.jsonl", "kind": "history",
      "reason": "cannot read history: Permission denied"},
     "/s/runs/r1.history.jsonl  cannot read history: Permission denied"),
    # a reason that says neither keeps the label; one naming the path only later too
    ({"path": "/s/runs/.r1.json.tmp-1", "kind": "temp",
      "reason": "a temporary file left by an interrupted write; it is never read as state"},
     "/s/runs/.r1.json.tmp-1  temp: a temporary file left by an interrupted write; it is never "
     "read as state"),
    ({"path": "postgresql://h:5432/db wfrun_runs", "kind": "schema",
      "reason": "table wfrun_runs is missing: restore postgresql://h:5432/db wfrun_runs"},
     "postgresql://h:5432/db wfrun_runs  schema: table wfrun_runs is missing: restore "
     "postgresql://h:5432/db wfrun_runs"),
    ({"path": "", "kind": "snapshot", "reason": "memory store run r1 is not valid JSON"},
     "memory store run r1 is not valid JSON"),
    # a schedule's path is a phrase, not a place: a reason naming its workflow is the line
    ({"path": "schedule of workflow 'beat'", "kind": "schedule",
      "reason": "the schedule state of workflow 'beat' is damaged ('through' is not a time); "
                "remove it"},
     "the schedule state of workflow 'beat' is damaged ('through' is not a time); remove it"),
    ({"path": "schedule of workflow 'beat'", "kind": "schedule",
      "reason": "schedule state /s/schedules/beat.json is damaged (it does not verify); move it "
                "away and the schedule of workflow 'beat' starts afresh"},
     "schedule state /s/schedules/beat.json is damaged (it does not verify); move it away and "
     "the schedule of workflow 'beat' starts afresh"),
    ({"path": "schedule of workflow 'beat'", "kind": "schedule",
      "reason": "cannot read it: Permission denied"},
     "schedule of workflow 'beat'  schedule: cannot read it: Permission denied"),
    ({"path": "/s/of/x.json", "kind": "snapshot", "reason": "it is empty; x.json is left"},
     "/s/of/x.json  snapshot: it is empty; x.json is left"),
])
def test_a_doctor_line_says_what_the_reason_does_not(problem: dict[str, str], line: str) -> None:
    from wfrun.cli._doctor import problem_line

    assert problem_line(problem) == line


@pytest.mark.parametrize(("damage", "kind", "begins"), [
    ("run_schema = 99", "snapshot", ""),  # a damaged row
    ("next_due = now()", "index", " is due at no time but its next_due column says "),
])
def test_doctor_on_postgresql_names_a_damaged_row_once(
        tmp_path: Path, damage: str, kind: str, begins: str) -> None:
    import psycopg

    (tmp_path / "workflows").mkdir()
    for suffix, text in zip((".yaml", ".py"), HELLO, strict=True):
        (tmp_path / "workflows" / f"hello{suffix}").write_text(text)
    with _pg.schema() as url:
        def wfrun(*args: str) -> Any:
            return CliRunner().invoke(app, ["--store", url, "--workflows-dir",
                                            str(tmp_path / "workflows"), *args])

        assert wfrun("start", "hello", "--run-id", "r1").exit_code == 0
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"UPDATE wfrun_runs SET {damage} WHERE run_id = 'r1'")
        out = wfrun("doctor")
        [problem] = json.loads(wfrun("doctor", "--json").stdout)["problems"]
    assert out.exit_code == 5, out.stdout
    assert problem["kind"] == kind and problem["reason"].startswith(problem["path"] + begins)
    assert out.stdout.splitlines()[0] == problem["reason"]
    assert out.stdout.count(problem["path"]) == 1
    assert out.stdout.count("r1") == 1, out.stdout


class _Engine:
    """Just what `_tick_once` asks of an engine: one tick's report."""

    def __init__(self, report: TickReport) -> None:
        self.report = report

    def tick(self, limit: int | None, workers: int) -> TickReport:
        return self.report


def test_tick_names_the_run_of_an_error_once(capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.cli import _settings

    monkeypatch.setattr(_settings, "_current", _settings.Settings(".wfstate", "workflows", False))
    taken = ("run r1 was taken over by another process: this one lost its lease (fencing "
             "token 3); nothing was saved")
    errors = [
        {"run_id": "r1", "message": taken},
        {"run_id": "r2", "message": "snapshot /s/runs/r2.json is empty; it is left as it is"},
        {"run_id": "r", "message": "run r1 is busy"},  # another run: not this one's name
        {"run_id": "c1", "message": "the parent run p1 of run c1 was not updated: gone"},
        {"run_id": None, "workflow": "beat", "message": "schedule of workflow 'beat' could not "
         "start run sched-beat-1 (fire time 2026-03-02T09:00:00Z): no"},
        {"run_id": None, "workflow": "broken", "message": "/w/broken.yaml: key 'steps': empty"},
    ]
    assert _tick_once(_Engine(TickReport(errors=list(errors))), True, None, 1) == 1
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"error: {taken} (wfrun show r1)",  # the store says the fact, the command the hint
        "error: run r2: snapshot /s/runs/r2.json is empty; it is left as it is",
        "error: run r: run r1 is busy",
        "error: the parent run p1 of run c1 was not updated: gone",
        "error: schedule of workflow 'beat' could not start run sched-beat-1 (fire time "
        "2026-03-02T09:00:00Z): no",
        "error: workflow broken: /w/broken.yaml: key 'steps': empty",
    ]
    assert json.loads(captured.out)["errors"] == errors  # ids kept in the JSON
    from wfrun.cli._ops import tick_error

    assert tick_error({"run_id": "r1", "message": "run r1-b failed"}) == "run r1: run r1-b failed"


def test_a_schedule_that_cannot_start_its_run_is_named_once(project: Project) -> None:
    project.workflow("beat", "schedule: {every: 15m}\ninput_schema: {type: object, required: [n]}"
                     "\nsteps:\n  - id: beat\n", "def beat(ctx):\n    return 1\n")
    project.state.mkdir(mode=0o700)  # (a tick that makes it says so too)
    out = project.run("tick", "--now", "2026-03-02T09:00:30Z", "--json")
    assert out.code == 1, out
    [error] = out.json()["errors"]
    assert error["run_id"] is None and error["workflow"] == "beat"
    assert error["message"].startswith("schedule of workflow 'beat' could not start run ")
    assert out.stderr.splitlines() == [f"error: {error['message']}"]



def test_a_run_taken_over_is_said_with_the_options_that_reach_its_store(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.cli import _settings
    from wfrun.errors import ClaimLost

    message = ClaimLost.taken_over("r1") + ": this one lost its lease (fencing token 3)"
    monkeypatch.setattr(_settings, "_current", _settings.Settings("/srv/my state", "workflows",
                                                                  True))
    assert _settings.with_hint(message) == f"{message} (wfrun --state-dir '/srv/my state' show r1)"
    monkeypatch.setattr(_settings, "_current", _settings.Settings(".wfstate", "workflows", False))
    assert _settings.with_hint(message) == f"{message} (wfrun show r1)"
    assert _settings.with_hint("run r1 is busy") == "run r1 is busy"
