"""A resume that finds the run claimed by a process with no step executing (a resume that lost
the race to it, and lets go of the claim it took before finding that out) waits a moment for
the claim instead of leaving the run to the next tick. Real processes: the claim is a kernel
lock held by another one."""

from __future__ import annotations

import subprocess
import sys

import pytest
from conftest import Project

HOLD = """
import sys, time
from wfrun.store.file import FileStore
claim = FileStore(sys.argv[1]).claim(sys.argv[2])
assert claim is not None
print("held", flush=True)
time.sleep(float(sys.argv[3]))
claim.release()
"""


@pytest.mark.parametrize("held", [0.15, 1.5])
def test_a_resume_takes_over_a_claim_let_go_within_a_moment(project: Project,
                                                             held: float) -> None:
    project.workflow("ok", """
        steps:
          - id: gate
            wait: true
          - id: after
    """, "def gate(ctx):\n    return None\n\ndef after(ctx):\n    return 'done'\n")
    run_id = project.json("start", "ok")["run_id"]
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(project.state), run_id,
                               str(held)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        out = project.run("resume", run_id, "--data", "{}", "--json")
    finally:
        holder.wait(10)
    assert out.code == 0, out.stderr
    if held < 0.5:  # let go while the resume waited: it executed the rest itself
        assert out.json()["status"] == "completed", out.stdout
        assert "being executed by another process" not in out.stderr
    else:  # a holder that keeps it: the run is left to it, or to the next tick
        assert out.json()["status"] == "running"
        assert "being executed by another process" in out.stderr + out.stdout
