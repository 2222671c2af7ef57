"""`--json` prints one document on stdout and nothing else (SPEC §5), even when a step's
subprocess or C code writes straight to file descriptor 1: while steps execute, descriptor 1
is stderr's. Real processes: the descriptors are what is under test."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import Project

NOISY = """
import os
import subprocess
import sys


def loud(ctx):
    subprocess.run([sys.executable, "-c", "print('from a subprocess')"], check=True)
    os.write(1, b"straight to fd 1\\n")
    if ctx.run.runs == 1:
        ctx.flow.rerun("1m")
    return "quiet"
"""


def _wfrun(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "wfrun", *project.base_args(), *args],
                          capture_output=True, text=True, cwd=project.root, timeout=60)


@pytest.mark.parametrize("command", ["start", "tick", "retry"])
def test_what_a_step_writes_to_descriptor_1_goes_to_stderr(project: Project,
                                                            command: str) -> None:
    project.workflow("noisy", "steps:\n  - id: loud\n", NOISY)
    started = _wfrun(project, "start", "noisy", "--json")
    out = started
    if command == "tick":
        out = _wfrun(project, "tick", "--now", "2099-01-01T00:00:00Z", "--json")
    elif command == "retry":
        run_id = json.loads(started.stdout)["run_id"]
        project.workflow("noisy", "steps:\n  - id: loud\n",
                         NOISY.replace('return "quiet"', 'raise RuntimeError("boom")'))
        _wfrun(project, "tick", "--now", "2099-01-01T00:00:00Z")  # fails the run
        project.workflow("noisy", "steps:\n  - id: loud\n", NOISY)
        out = _wfrun(project, "retry", run_id, "--json")
    assert out.returncode == 0, out.stderr
    json.loads(out.stdout)  # one document, nothing around it
    assert "from a subprocess" in out.stderr and "straight to fd 1" in out.stderr
    human = _wfrun(project, "start", "noisy")
    assert "from a subprocess" not in human.stdout and "waiting" in human.stdout


def test_tick_watch_keeps_stdout_to_its_reports(project: Project) -> None:
    project.workflow("noisy", "steps:\n  - id: loud\n", NOISY)
    _wfrun(project, "start", "noisy")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--watch", "--interval",
         "0.1", "--now", "2099-01-01T00:00:00Z", "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    assert proc.stdout is not None
    first = ""
    while '"errors"' not in first or not first.rstrip().endswith("}"):  # the first report
        line = proc.stdout.readline()
        assert line, proc.communicate()
        first += line
    proc.terminate()
    rest, err = proc.communicate(timeout=30)
    decoder, text, docs = json.JSONDecoder(), (first + rest).strip(), []
    while text:
        doc, end = decoder.raw_decode(text)
        docs.append(doc)
        text = text[end:].strip()
    assert docs[0]["advanced"][0]["status"] == "completed"
    assert "from a subprocess" in err


@pytest.mark.parametrize("args", [["show", "RUN"], ["show", "RUN", "--json"], ["list"],
                                  ["start", "two"]])
def test_a_reader_that_closes_stdout_early_is_exit_141_not_a_failed_run(
        project: Project, args: list[str]) -> None:
    """`wfrun show RUN | head -1`: exit 1 would say the run failed."""
    project.workflow("two", "steps:\n  - id: a\n  - id: b\n",
                     "def a(ctx):\n    return 1\n\ndef b(ctx):\n    return 2\n")
    run_id = json.loads(_wfrun(project, "start", "two", "--json").stdout)["run_id"]
    read, write = os.pipe()
    os.close(read)  # the reader is gone before wfrun writes a byte
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "wfrun", *project.base_args(),
             *[run_id if a == "RUN" else a for a in args]],
            stdout=write, stderr=subprocess.PIPE, text=True, cwd=project.root, timeout=60)
    finally:
        os.close(write)
    assert proc.returncode == 141, proc.stderr
    assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr
