"""A tick under a low file descriptor limit (`ulimit -n 32`, a tight systemd LimitNOFILE=)
claims as many runs at a time as leave it descriptors to advance them, and advances them all,
instead of failing at the claim that finds none left (it printed a traceback, and every run
after it stayed waiting)."""

from __future__ import annotations

import resource
import subprocess
import sys

from conftest import END_OF_TIME, Project

NAP = "steps:\n  - {id: nap, sleep: 1h}\n  - {id: after, handler: done}\n"
DONE = "def done(ctx):\n    return 1\n"


def _limit_descriptors() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))


def test_a_tick_with_32_descriptors_advances_40_due_runs(project: Project) -> None:
    project.workflow("nap", NAP, DONE)
    for i in range(1, 41):
        assert project.run("start", "nap", "--run-id", f"s{i}").code == 0
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--workers", "1",
         "--now", END_OF_TIME], capture_output=True, text=True, timeout=120, cwd=project.root,
        preexec_fn=_limit_descriptors)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    runs = project.json("list", "--limit", "100")
    assert len(runs) == 40 and {run["status"] for run in runs} == {"completed"}
