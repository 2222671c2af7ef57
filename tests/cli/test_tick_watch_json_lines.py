"""`tick --watch --json` prints JSON Lines: one compact object per tick that advanced a run or
had errors, nothing for a tick with nothing to do; `tick --json` stays one document."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from conftest import Project

SLEEPER = """
    steps:
      - id: nap
        sleep: 1h
      - id: after
"""
SLEEPER_PY = """
def after(ctx):
    if ctx.input.get("fail"):
        raise RuntimeError("woke up wrong")
    return "rested"
"""


def test_watch_json_prints_one_compact_line_per_tick_that_did_something(project: Project) -> None:
    project.workflow("sleeper", SLEEPER, SLEEPER_PY)
    for run_id, data in (("a1", "{}"), ("b2", '{"fail": true}')):
        assert project.json("start", "sleeper", "--run-id", run_id, "--input", data)["status"] == "waiting"
    proc = subprocess.Popen(  # --limit 1: one run per tick, so two ticks advance something
        [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--watch", "--json",
         "--interval", "0.1", "--limit", "1", "--now", "+2h"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    assert proc.stdout is not None
    lines = [proc.stdout.readline(), proc.stdout.readline()]
    time.sleep(1.0)  # about ten more ticks, with nothing left to do
    proc.terminate()
    rest, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert rest == "", rest  # idle ticks print nothing
    reports = [json.loads(line) for line in lines]  # each line a whole JSON object
    assert all(line.endswith("}\n") and "\n" not in line[:-1] for line in lines), lines
    assert lines == [json.dumps(r, separators=(",", ":")) + "\n" for r in reports]  # compact
    advanced = [entry for r in reports for entry in r["advanced"]]
    assert [len(r["advanced"]) for r in reports] == [1, 1]
    assert all(r["errors"] == [] for r in reports)
    assert sorted((a["run_id"], a["reason"], a["status"]) for a in advanced) == [
        ("a1", "sleep", "completed"), ("b2", "sleep", "failed")]
    assert "error: run b2 failed: step 'after' raised RuntimeError: woke up wrong" in err


def test_tick_json_without_watch_stays_one_pretty_document(project: Project) -> None:
    project.workflow("sleeper", SLEEPER, SLEEPER_PY)
    project.json("start", "sleeper", "--run-id", "a1")
    out = project.run("tick", "--now", "+2h", "--json")
    assert out.code == 0, out
    assert out.stdout.startswith('{\n  "advanced": [')  # indented, as every other --json
    assert json.loads(out.stdout) == {
        "advanced": [{"run_id": "a1", "step": "nap", "reason": "sleep", "status": "completed"}],
        "errors": []}
    idle = project.run("tick", "--now", "+2h", "--json")
    assert json.loads(idle.stdout) == {"advanced": [], "errors": []}  # even when nothing was due
