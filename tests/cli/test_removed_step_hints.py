"""A run paused at a step that the workflow's current manifest no longer has (it was edited
after the run paused): `resume` refuses it (exit 2), so `show`, the run document and `pending`
offer no resume command or URL for it; they say what `resume` says instead (`gone`)."""

from __future__ import annotations

from conftest import Project

GATED = """
    steps:
      - id: first
      - id: gate
        wait: true
        resume_schema: {type: object, properties: {ok: {type: boolean}}}
      - id: poll
        needs: [first]
      - id: after
        needs: [gate, poll]
"""
GATED_PY = """
def first(ctx):
    return 1

def poll(ctx):
    ctx.flow.rerun("1h", max_retries=3)

def after(ctx):
    return 2
"""
EDITED = "steps:\n  - id: first\n  - id: after\n    needs: [first]\n"


def refusal(project: Project, run_id: str, step: str) -> str:
    """What `resume` says of `step` (exit 2), without the `error: ` of its line."""
    out = project.run("resume", run_id, "--step", step)
    assert out.code == 2, (out.stdout, out.stderr)
    [line] = [t for t in out.stderr.splitlines() if t.startswith("error: ")]
    assert "no longer exists in workflow" in line and "cancel the run" in line, line
    return line.removeprefix("error: ")


def test_show_and_pending_say_a_removed_step_cannot_be_resumed_as_resume_does(
        project: Project) -> None:
    manifest = project.workflow("gated", GATED, GATED_PY)
    run_id = project.json("start", "gated", "--run-id", "g1")["run_id"]
    before = project.json("show", run_id)
    assert before["suspended"][0]["resume_command"] and "gone" not in before["suspended"][0]
    assert before["waiting"][0]["resume_command"] and "gone" not in before["waiting"][0]
    manifest.write_text(EDITED)

    doc = project.json("show", run_id)
    [entry] = doc["suspended"]
    assert entry["step"] == "gate"
    assert entry["resume_command"] is None and entry["resume_url"] is None
    assert entry["gone"] == refusal(project, run_id, "gate")
    assert "/steps/gate/cancel?token=" in entry["cancel_url"]  # cancelling still works
    [waiting] = doc["waiting"]
    assert waiting["step"] == "poll" and waiting["kind"] == "rerun"
    assert waiting["resume_command"] is None and waiting["resume_url"] is None
    assert waiting["gone"] == refusal(project, run_id, "poll")

    human = project.run("show", run_id)
    assert human.code == 0, human.stderr
    assert "resume:" not in human.stdout and "resume now" not in human.stdout
    assert "/resume?token=" not in human.stdout
    lines = human.stdout.splitlines()
    said = lines.index(f"    {entry['gone']}")
    assert lines[said - 1].startswith("⏸ gate waits for data since")
    assert lines[said + 1].startswith("    cancel: ") and lines[said + 1].endswith(f" cancel {run_id}")
    assert f"    {waiting['gone']}" in lines

    [row] = project.json("pending")
    assert row["step"] == "gate" and row["resume_command"] is None
    assert row["gone"] == entry["gone"]
    listed = project.run("pending")
    assert listed.code == 0 and entry["gone"] in listed.stdout
    assert "resume:" not in listed.stdout

    manifest.write_text(GATED.replace("\n    ", "\n"))  # the steps restored: offered again
    again = project.json("show", run_id)
    assert again["suspended"][0]["resume_command"] == before["suspended"][0]["resume_command"]
    assert "gone" not in again["suspended"][0] and "gone" not in again["waiting"][0]


def test_a_removed_foreach_step_offers_no_resume_for_its_iterations(project: Project) -> None:
    manifest = project.workflow("fe", """
        steps:
          - id: items
          - id: each
            foreach: items
          - id: total
        """, """
        def items(ctx):
            return ["a", "b"]

        def each(ctx):
            ctx.flow.suspend(data={"asks": ctx.item})

        def total(ctx):
            return 1
        """)
    run_id = project.json("start", "fe", "--run-id", "f1")["run_id"]
    manifest.write_text("steps:\n  - id: items\n  - id: total\n")
    doc = project.json("show", run_id)
    assert [e["step"] for e in doc["suspended"]] == ["each[0]", "each[1]"]
    message = refusal(project, run_id, "each[1]")
    assert "step 'each' of run f1" in message
    for entry in doc["suspended"]:
        assert entry["resume_command"] is None and entry["resume_url"] is None
        assert entry["gone"] == message
    human = project.run("show", run_id).stdout
    assert "resume:" not in human and human.count(message) == 2


def test_a_child_run_whose_parent_step_was_removed_is_not_resumed(project: Project) -> None:
    # the parent could never continue: the child's resume is refused as the parent's would be
    project.workflow("kid", "steps:\n  - {id: approve, wait: true}\n")
    parent = project.workflow("outer", """
        steps:
          - {id: sub, workflow: kid}
          - id: fin
        """, "def fin(ctx):\n    return 1\n")
    project.json("start", "outer", "--run-id", "o1")
    parent.write_text("steps:\n  - id: fin\n")
    before = project.snapshots()
    for args in (["o1", "--step", "sub/approve"], ["o1--sub"]):
        out = project.run("resume", *args, "--data", "{}")
        assert out.code == 2, (args, out)
        assert "step 'sub' of run o1 no longer exists in workflow" in out.stderr
    assert project.snapshots() == before
    [entry] = project.json("show", "o1")["suspended"]
    assert entry["step"] == "sub/approve"
    assert entry["resume_command"] is None and entry["resume_url"] is None
    assert "step 'sub' of run o1 no longer exists" in entry["gone"]
    [own] = project.json("show", "o1--sub")["suspended"]  # the child's own document too
    assert own["resume_command"] is None and own["resume_url"] is None
    assert own["gone"] == entry["gone"]


def test_a_removed_approvals_step_offers_no_cancel_link_that_opens_nothing(
        project: Project) -> None:
    manifest = project.workflow("gate", """
        steps:
          - id: sign
            wait: true
            approvals: {approvers: [ann, bob], required: 1}
          - id: after
        """, "def after(ctx):\n    return 1\n")
    project.json("start", "gate", "--run-id", "a1")
    manifest.write_text("steps:\n  - id: after\n")
    [entry] = project.json("show", "a1")["suspended"]
    assert entry["gone"] and entry["cancel_url"] is None  # its approvers' links are the ones
