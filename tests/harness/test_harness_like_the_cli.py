"""wfrun.testing takes what the command takes, and refuses what it refuses, with the error of
its exit code (`wfrun.errors`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from wfrun.errors import NotFoundError, UsageError
from wfrun.testing import Harness

GATE = """name: gate
steps:
  - id: ask
    wait: true
    label: manager
  - id: done
"""
GATE_PY = """
def done(ctx):
    return ctx.steps["ask"].output
"""


@pytest.fixture
def harness(tmp_path: Path) -> Harness:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "gate.yaml").write_text(GATE)
    (workflows / "gate.py").write_text(GATE_PY)
    return Harness(workflows, tmp_path / ".wfstate")


def test_resume_by_label_as_resume_label(harness: Harness) -> None:
    run_id = harness.start("gate")["run_id"]
    with pytest.raises(NotFoundError):
        harness.resume(run_id, {"ok": True}, label="director")
    with pytest.raises(UsageError, match="step= or label=, not both"):
        harness.resume(run_id, {"ok": True}, step="ask", label="manager")
    done = harness.resume(run_id, {"ok": True}, label="manager")
    assert (done["status"], done["output"]) == ("completed", {"ok": True})
