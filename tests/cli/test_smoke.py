"""The README's example workflow, end to end through the CLI."""

from __future__ import annotations

import shutil

from conftest import REPO, Project


def test_expense_approval_suspends_and_completes_on_resume(project: Project) -> None:
    for name in ("expense-approval.yaml", "expense-approval.py"):
        shutil.copy(REPO / "workflows" / name, project.workflows / name)
    doc = project.json("start", "expense-approval", "--input", '{"user": "ann", "amount": 42}')
    assert doc["status"] == "suspended"
    assert [s["step"] for s in doc["suspended"]] == ["manager-approval"]
    run_id = doc["run_id"]
    done = project.json("resume", run_id, "--action", "approved",
                        "--data", '{"approved": true, "reviewer": "bob"}')
    assert done["status"] == "completed"
    assert done["steps"]["pay"]["output"] == {"paid": 42, "to": "ann", "approved_by": "bob"}
    assert done["steps"]["reject"]["status"] == "skipped"
    assert done["output"] == {"notified": "ann", "decision": "approved"}
