"""Ctrl-C (SIGINT) or SIGTERM while `start`, `resume` or `tick` executes a step: one sentence
says what became of the run (it stays running; the next tick continues it from that step),
the exit code is 130 or 143, and the next tick does continue it. Real processes, real signals:
the step writes a marker file once it has started, then sleeps until the signal comes."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import Project

MODULE = """
import os
import time


def slow(ctx):
    marker = ctx.input["marker"]
    if not os.path.exists(marker):  # the first execution waits for the signal
        open(marker, "w").close()
        time.sleep(60)
    return "done"


def after(ctx):
    return ctx.steps["slow"].output
"""
FAR = "2099-01-01T00:00:00Z"


def _workflows(project: Project) -> None:
    project.workflow("slow", "steps:\n  - id: slow\n  - id: after\n", MODULE)
    project.workflow("gated", "steps:\n  - id: ask\n    wait: true\n  - id: slow\n  - id: after\n",
                     MODULE)
    project.workflow("later", "steps:\n  - id: nap\n    sleep: 1h\n  - id: slow\n  - id: after\n",
                     MODULE)


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)  # as in a terminal, whatever pytest inherited


def _interrupt(project: Project, signum: int, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `wfrun ARGS`, send `signum` once the step has started, and wait for the process."""
    marker = project.root / "marker"
    proc = subprocess.Popen([sys.executable, "-m", "wfrun", *project.base_args(), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=project.root, preexec_fn=_default_sigint)
    deadline = time.monotonic() + 30
    while not marker.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.02)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=30)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _input(project: Project) -> str:
    return json.dumps({"marker": str(project.root / "marker")})


def _continued_by_tick(project: Project, run_id: str, *now: str) -> None:
    doc = project.json("show", run_id)
    assert doc["status"] == "running" and doc["steps"]["slow"]["status"] == "running"
    report = project.json("tick", *now)
    assert [(a["run_id"], a["step"], a["reason"]) for a in report["advanced"]] == \
        [(run_id, "slow", "recovered")]
    done = project.json("show", run_id)
    assert (done["status"], done["output"]) == ("completed", "done")


@pytest.mark.parametrize(("signum", "code", "word"), [
    (signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated (SIGTERM)")])
def test_start_interrupted_mid_step_says_the_run_stays_running_and_tick_continues_it(
        project: Project, signum: int, code: int, word: str) -> None:
    _workflows(project)
    done = _interrupt(project, signum, "start", "slow", "--input", _input(project))
    assert done.returncode == code, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
    tick = f"'wfrun --state-dir {project.state} tick'"
    found = re.fullmatch(rf"{re.escape(word)}: run (\S+) stays running; the next {re.escape(tick)} "
                         r"continues it from step 'slow' \(or '.* cancel \1' stops it\)\n",
                         done.stderr)
    assert found, done.stderr
    _continued_by_tick(project, found[1])


def test_resume_interrupted_mid_step_names_the_run_and_step(project: Project) -> None:
    _workflows(project)
    assert project.json("start", "gated", "--run-id", "g1", "--input",
                        _input(project))["status"] == "suspended"
    done = _interrupt(project, signal.SIGINT, "resume", "g1", "--data", "{}")
    assert done.returncode == 130, done.stderr
    assert done.stderr.startswith("interrupted: run g1 stays running;")
    assert "continues it from step 'slow'" in done.stderr
    _continued_by_tick(project, "g1")


def test_tick_terminated_mid_step_says_the_run_stays_running(project: Project) -> None:
    _workflows(project)
    project.json("start", "later", "--run-id", "l1", "--input", _input(project))
    done = _interrupt(project, signal.SIGTERM, "tick", "--now", FAR)
    assert done.returncode == 143, done.stderr
    assert done.stderr == (
        f"terminated (SIGTERM): a run this tick was executing stays running; the next "
        f"'wfrun --state-dir {project.state} tick' continues it from the step it was in\n")
    _continued_by_tick(project, "l1", "--now", FAR)


def test_a_keyboard_interrupt_a_step_raises_itself_fails_the_step_not_the_command(
        project: Project) -> None:
    project.workflow("rude", "steps:\n  - id: a\n    retry: {max_attempts: 2, delay: 1m}\n",
                     "def a(ctx):\n    raise KeyboardInterrupt('from the step')\n")
    project.workflow("nap", "steps:\n  - id: nap\n    sleep: 1h\n  - id: b\n",
                     "def b(ctx):\n    return 'woke'\n")

    def wfrun(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "wfrun", *project.base_args(), *args],
                              capture_output=True, text=True, cwd=project.root, timeout=60,
                              preexec_fn=_default_sigint)

    first = wfrun("start", "rude", "--json")
    assert first.returncode == 0, first.stderr  # waiting for its retry, like any exception
    rude = json.loads(first.stdout)["run_id"]
    nap = json.loads(wfrun("start", "nap", "--json").stdout)["run_id"]
    ticked = wfrun("tick", "--now", FAR, "--json")
    assert ticked.returncode == 1, ticked.stderr  # the rude run failed; the other went on
    report = json.loads(ticked.stdout)
    assert {(a["run_id"], a["status"]) for a in report["advanced"]} == {
        (rude, "failed"), (nap, "completed")}
    error = project.json("show", rude)["error"]
    assert (error["type"], error["message"]) == ("KeyboardInterrupt", "from the step")
