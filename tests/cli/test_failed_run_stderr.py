"""Every command that leaves a run failed (exit 1) says so on stderr as tick does:
`error: run R failed: step 'S' raised T: message (wfrun show R)`, also with --json (stdout
stays the JSON document, and the frames of the workflow code go under the line; for people,
the run printed on stdout shows them); the `show` hint names the
store the command was given (--store, --state-dir), as every other printed command does."""

from __future__ import annotations

import json
import shlex
import subprocess
import sys

import pytest
from conftest import Outcome, Project
from typer.testing import CliRunner

from wfrun.cli import app

FLOW = """
    steps:
      - id: gate
        wait: true
      - id: boom
        needs: [gate]
"""
FLOW_PY = """
import os


def boom(ctx):
    if os.path.exists(os.path.join(os.path.dirname(__file__), "fixed")):
        return "ok"
    raise RuntimeError("no luck")
"""
DIRECT = """
    steps:
      - id: boom
"""
EVENTS = """
    steps:
      - id: wait
      - id: boom
"""
EVENTS_PY = FLOW_PY + """

def wait(ctx):
    ctx.flow.wait_for_event("go")
"""


@pytest.fixture
def flows(project: Project) -> Project:
    project.workflow("flow", FLOW, FLOW_PY)
    project.workflow("direct", DIRECT, FLOW_PY)
    project.workflow("events", EVENTS, EVENTS_PY)
    return project


def _show(project: Project, run_id: str) -> str:
    return f"(wfrun --state-dir {shlex.quote(str(project.state))} show {run_id})"


def _assert_failed(project: Project, out: Outcome, run_id: str, workflow: str, as_json: bool) -> None:
    code, stdout, stderr = out.code, out.stdout, out.stderr
    assert code == 1, (stdout, stderr)
    expected = [f"error: run {run_id} failed: step 'boom' raised RuntimeError: no luck "
                f"{_show(project, run_id)}",
                f'    File "{project.workflows / f"{workflow}.py"}", line 8, in boom',
                '      raise RuntimeError("no luck")']
    lines = stderr.splitlines()
    at = lines.index(expected[0])  # one error line, the frames under it (once: for people,
    assert sum(line.startswith("error:") for line in lines) == 1, stderr  # stdout has them)
    if as_json:
        assert lines[at:at + 3] == expected, stderr
        doc = json.loads(stdout)  # stdout is exactly the run document
        assert (doc["run_id"], doc["status"]) == (run_id, "failed")
    else:
        assert "File " not in stderr, stderr
        assert f"Run {run_id} ({workflow}) is failed." in stdout
        assert "error in step 'boom': RuntimeError: no luck" in stdout
        assert expected[1].strip() in stdout
        assert "error: run" not in stdout


@pytest.mark.parametrize("as_json", [False, True])
def test_start_resume_send_retry_fork_say_a_failed_run_on_stderr(flows: Project, as_json: bool) -> None:
    json_opt = ["--json"] if as_json else []
    out = flows.run("start", "direct", "--run-id", "d1", *json_opt)
    _assert_failed(flows, out, "d1", "direct", as_json)
    again = flows.run("start", "direct", "--run-id", "d1", *json_opt)  # idempotent: as it ran
    _assert_failed(flows, again, "d1", "direct", as_json)

    flows.json("start", "flow", "--run-id", "f1")
    _assert_failed(flows, flows.run("resume", "f1", *json_opt), "f1", "flow", as_json)
    _assert_failed(flows, flows.run("retry", "f1", *json_opt), "f1", "flow", as_json)
    _assert_failed(flows, flows.run("fork", "f1", "--from", "boom", "--run-id", "f2", *json_opt),
                   "f2", "flow", as_json)

    flows.json("start", "events", "--run-id", "e1")
    _assert_failed(flows, flows.run("send", "e1", "go", *json_opt), "e1", "events", as_json)


def test_a_command_whose_run_does_not_fail_says_no_error(flows: Project) -> None:
    flows.json("start", "flow", "--run-id", "f1")
    (flows.workflows / "fixed").write_text("")
    out = flows.run("resume", "f1")
    assert out.code == 0 and "error" not in out.stderr, out


def _tick_failure_line(project: Project, args: list[str]) -> str:
    """Start a run that fails when tick fires it; the failure line tick says on stderr."""
    project.workflow("later", """
        steps:
          - id: nap
            sleep: 1h
          - id: boom
    """, FLOW_PY)
    proc = subprocess.run([sys.executable, "-m", "wfrun", *args, "start", "later", "--run-id", "t1"],
                          capture_output=True, text=True, cwd=project.root, timeout=60)
    assert proc.returncode == 0, proc.stderr
    proc = subprocess.run([sys.executable, "-m", "wfrun", *args, "tick", "--now", "+2h"],
                          capture_output=True, text=True, cwd=project.root, timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    return next(line for line in proc.stderr.splitlines() if line.startswith("error: run t1 failed"))


def test_tick_failure_hint_names_the_state_dir_given(project: Project) -> None:
    line = _tick_failure_line(project, ["--state-dir", "my state"])
    assert line.endswith("(wfrun --state-dir 'my state' show t1)"), line


def test_tick_failure_hint_names_the_store_given(project: Project) -> None:
    line = _tick_failure_line(project, ["--store", "file:elsewhere"])
    assert line.endswith("(wfrun --store file:elsewhere show t1)"), line


def test_tick_failure_hint_is_plain_with_the_default_store(project: Project) -> None:
    line = _tick_failure_line(project, [])
    assert line.endswith("(wfrun show t1)"), line


def test_resume_hint_names_the_store_in_process_too(flows: Project) -> None:
    runner = CliRunner()
    store = f"file:{flows.state}"
    base = ["--store", store, "--workflows-dir", str(flows.workflows)]
    assert runner.invoke(app, [*base, "start", "flow", "--run-id", "f1"]).exit_code == 0
    out = runner.invoke(app, [*base, "resume", "f1"])
    assert out.exit_code == 1
    assert f"(wfrun --store {shlex.quote(store)} show f1)" in out.stderr
