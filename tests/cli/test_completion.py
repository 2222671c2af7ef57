"""Shell completion of run ids, workflow names and steps, through the installed `wfrun`
script as bash asks it (`_WFRUN_COMPLETE=complete_bash`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import Project

WFRUN = Path(sys.executable).parent / "wfrun"  # the console script pip installs


def complete(project: Project, line: str, env: dict[str, str] | None = None) -> list[str]:
    """What bash completion offers for the last word of `line` ("" after a trailing space)."""
    words = line.split(" ")
    proc = subprocess.run(
        [str(WFRUN)], capture_output=True, text=True, cwd=project.root, timeout=60,
        env={**os.environ, "_WFRUN_COMPLETE": "complete_bash", "COMP_WORDS": line,
             "COMP_CWORD": str(len(words) - 1), **(env or {})},
    )
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    return proc.stdout.split()


def _two_waits(project: Project) -> None:
    project.workflow("approve", """
        name: approve
        steps:
          - id: legal
            wait: true
          - id: finance
            wait: true
            needs: []
          - id: done
            needs: [legal, finance]
    """, "def done(ctx):\n    return 1\n")
    project.workflow("report", """
        steps:
          - id: build
    """, "def build(ctx):\n    return 1\n")


def test_run_ids_complete_by_prefix_from_the_state_directory(project: Project) -> None:
    _two_waits(project)
    for run_id in ("ann-1", "ann-2", "bob-1"):
        project.run("start", "approve", "--run-id", run_id)
    dirs = f"--state-dir {project.state} --workflows-dir {project.workflows}"
    assert complete(project, f"wfrun {dirs} show ann") == ["ann-1", "ann-2"]
    assert complete(project, f"wfrun {dirs} cancel ") == ["ann-1", "ann-2", "bob-1"]
    # the state directory may come from the environment, as for any command
    assert complete(project, "wfrun logs b", env={"WFRUN_STATE_DIR": str(project.state)}) \
        == ["bob-1"]
    assert complete(project, "wfrun show a") == ["ann-1", "ann-2"]  # ./.wfstate, the default
    missing = project.root / "elsewhere"
    assert complete(project, f"wfrun --state-dir {missing} show ") == []
    assert not missing.exists()  # completing never creates a state directory


def test_workflow_names_and_steps_complete(project: Project) -> None:
    _two_waits(project)
    project.run("start", "approve", "--run-id", "r1")
    before = project.snapshots()
    dirs = f"--state-dir {project.state} --workflows-dir {project.workflows}"
    assert complete(project, f"wfrun {dirs} start ") == ["approve", "report"]
    assert complete(project, f"wfrun {dirs} validate r") == ["report"]
    # resume --step: the steps that can take data now; fork --from: every step of the run
    assert complete(project, f"wfrun {dirs} resume r1 --step ") == ["legal", "finance"]
    assert complete(project, f"wfrun {dirs} resume r1 --step f") == ["finance"]
    assert complete(project, f"wfrun {dirs} fork r1 --from ") == ["legal", "finance", "done"]
    assert complete(project, f"wfrun {dirs} resume nosuchrun --step ") == []
    assert project.snapshots() == before  # completing never writes
