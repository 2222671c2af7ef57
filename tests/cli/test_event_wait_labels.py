"""A step's `label:` names its event wait (`ctx.flow.wait_for_event`) as it names its
`suspend()` and `ask()` (SPEC §2 "Labels"): the label is in `show`, `pending` and the run
document, and `wfrun resume RUN --label NAME` of it is refused as a resume of an event wait
is: exit 3, saying to send the event."""

from __future__ import annotations

from conftest import Project

MANIFEST = """\
name: shipping
steps:
  - id: wait-paid
    label: paid
  - id: ship
"""
MODULE = """\
def wait_paid(ctx):
    ctx.flow.wait_for_event("payment")


def ship(ctx):
    return ctx.steps["wait-paid"].resume_data
"""


def _start(project: Project) -> str:
    project.workflow("shipping", MANIFEST, MODULE)
    run_id: str = project.json("start", "shipping", "--run-id", "s1")["run_id"]
    return run_id


def test_an_event_wait_carries_its_steps_label(project: Project) -> None:
    run_id = _start(project)
    [entry] = project.json("show", run_id)["suspended"]
    assert (entry["step"], entry["event"], entry["label"]) == ("wait-paid", "payment", "paid")
    [row] = project.json("pending")
    assert row["label"] == "paid"
    assert "(label paid, event payment)" in project.run("pending").stdout
    assert "label paid" in project.run("show", run_id).stdout
    [suspended] = [e for e in project.store().read_history(run_id) if e["type"] == "suspended"]
    assert suspended["label"] == "paid" and suspended["event"] == "payment"
    done = project.json("send", run_id, "payment", "--data", '{"amount": 3}')
    assert done["status"] == "completed" and done["output"] == {"amount": 3}


def test_resume_by_the_label_of_an_event_wait_says_to_send_the_event(project: Project) -> None:
    run_id = _start(project)
    before = project.snapshots()
    out = project.run("resume", run_id, "--label", "paid", "--data", "{}")
    assert out.code == 3, out.stderr
    assert "waits for event 'payment', not for a resume" in out.stderr
    assert f"wfrun send {run_id} payment --data JSON" in out.stderr
    assert project.snapshots() == before
