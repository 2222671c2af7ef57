"""Nested workflows (`workflow:` steps), driven through the CLI: child runs, paths, resume,
cancel, timers inside children, pending, and validation of the new keys."""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import Project

CHILD_WAIT = """
    name: child
    input_schema: {type: object, required: [doc]}
    steps:
      - id: look
      - id: approve
        wait: true
        resume_schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
      - id: done
"""
CHILD_WAIT_PY = """
    def look(ctx):
        return {"saw": ctx.input["doc"]}

    def done(ctx):
        return {"doc": ctx.input["doc"], "ok": ctx.steps["approve"].output["ok"]}
"""
PARENT = """
    name: parent
    steps:
      - id: prepare
      - id: review
        workflow: child
        input_from: prepare
      - id: finish
"""
PARENT_PY = """
    def prepare(ctx):
        return {"doc": ctx.input.get("doc", "a.pdf")}

    def finish(ctx):
        return {"review": ctx.steps["review"].output}
"""


def setup(project: Project, child: str = CHILD_WAIT, child_py: str = CHILD_WAIT_PY) -> None:
    project.workflow("child", child, child_py)
    project.workflow("parent", PARENT, PARENT_PY)


def start(project: Project, run_id: str = "p1", **input: Any) -> dict[str, Any]:
    return dict(project.json("start", "parent", "--run-id", run_id, "--input", json.dumps(input)))


def test_child_that_completes_gives_the_step_its_output(project: Project) -> None:
    project.workflow("child", """
        name: child
        steps:
          - id: double
    """, """
        def double(ctx):
            return {"doubled": ctx.input["n"] * 2}
    """)
    project.workflow("parent", """
        name: parent
        steps:
          - id: number
          - id: calc
            workflow: child
            input_from: number
          - id: whole
            workflow: child
            needs: [calc]
    """, """
        def number(ctx):
            return {"n": 21}
    """)
    doc = project.json("start", "parent", "--run-id", "p1", "--input", '{"n": 5}')
    assert doc["status"] == "completed"
    assert doc["steps"]["calc"]["output"] == {"doubled": 42}
    assert doc["steps"]["calc"]["child_run_id"] == "p1--calc"
    assert doc["steps"]["whole"]["output"] == {"doubled": 10}  # no input_from: parent's input
    child = project.json("show", "p1--calc")
    assert child["status"] == "completed"
    assert child["parent"] == {"run_id": "p1", "step": "calc", "index": None}
    assert child["input"] == {"n": 21}


def test_child_failure_fails_the_step_and_the_run(project: Project) -> None:
    project.workflow("child", """
        name: child
        steps:
          - id: boom
    """, """
        def boom(ctx):
            raise ValueError("no such customer")
    """)
    project.workflow("parent", """
        name: parent
        steps:
          - id: call
            workflow: child
          - id: after
    """, "def after(ctx):\n    return 1\n")
    out = project.run("start", "parent", "--run-id", "p1", "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["steps"]["call"]["status"] == "failed"
    assert doc["steps"]["after"]["status"] == "cancelled"
    assert doc["error"]["step"] == "call"
    assert doc["error"]["type"] == "ValueError"
    assert "child run p1--call failed in step 'boom'" in doc["error"]["message"]
    assert "no such customer" in doc["error"]["message"]
    assert project.json("show", "p1--call")["status"] == "failed"


def test_child_input_not_matching_its_schema_fails_the_step(project: Project) -> None:
    setup(project)
    project.workflow("parent", """
        name: parent
        steps:
          - id: review
            workflow: child
    """)
    out = project.run("start", "parent", "--input", '{"other": 1}', "--json")
    assert out.code == 1
    error = out.json()["error"]
    assert error["type"] == "ChildWorkflowError"
    assert "input of workflow 'child'" in error["message"]
    assert "doc" in error["message"]


def test_suspension_in_child_surfaces_with_its_path_and_resumes_by_path(
        project: Project) -> None:
    setup(project)
    doc = start(project)
    assert doc["status"] == "suspended"
    assert doc["steps"]["review"]["status"] == "suspended"
    [entry] = doc["suspended"]
    assert entry["path"] == ["review", "approve"]
    assert entry["step"] == "review/approve"
    assert entry["child_run_id"] == "p1--review"
    assert "--step review/approve" in entry["resume_command"]
    assert "/runs/p1--review/steps/approve/resume?token=" in entry["resume_url"]
    # bad data is refused before anything changes, naming the step
    before = project.snapshots()
    bad = project.run("resume", "p1", "--step", "review/approve", "--data", '{"ok": "yes"}')
    assert bad.code == 2 and "approve" in bad.stderr
    assert project.snapshots() == before
    done = project.json("resume", "p1", "--step", "review/approve", "--data", '{"ok": true}')
    assert done["status"] == "completed"
    assert done["output"] == {"review": {"doc": "a.pdf", "ok": True}}
    again = project.run("resume", "p1", "--step", "review/approve", "--data", '{"ok": true}')
    assert again.code == 3


def test_resume_without_step_and_by_the_parent_step_alone(project: Project) -> None:
    setup(project)
    start(project, "p1")
    assert project.json("resume", "p1", "--data", '{"ok": false}')["status"] == "completed"
    start(project, "p2")
    done = project.json("resume", "p2", "--step", "review", "--data", '{"ok": true}')
    assert done["output"] == {"review": {"doc": "a.pdf", "ok": True}}


def test_a_second_resume_through_the_parent_says_when_the_first_was(project: Project) -> None:
    # SPEC §6: exit 3 "saying when it was resumed", however the suspension is addressed
    setup(project)
    start(project, "p1")
    assert project.json("resume", "p1", "--data", '{"ok": true}')["status"] == "completed"
    for step in ([], ["--step", "review"], ["--step", "review/approve"]):
        again = project.run("resume", "p1", *step, "--data", '{"ok": false}')
        assert again.code == 3, again
        assert "step 'review/approve' of run p1 was already resumed at " in again.stderr, again
    project.workflow("batch", """
        steps:
          - id: items
          - {id: each, foreach: items, workflow: child}
          - {id: last, wait: true}
        """, "def items(ctx):\n    return [{'doc': 'a'}, {'doc': 'b'}]\n")
    project.json("start", "batch", "--run-id", "b1")
    project.json("resume", "b1", "--step", "each[1]", "--data", '{"ok": true}')
    again = project.run("resume", "b1", "--step", "each[1]", "--data", '{"ok": true}')
    assert again.code == 3, again
    assert "step 'each[1]/approve' of run b1 was already resumed at " in again.stderr, again


def test_resume_data_refused_by_a_child_step_names_it_by_its_path(project: Project) -> None:
    setup(project)
    start(project, "p1")
    out = project.run("resume", "p1", "--step", "review/approve", "--data", '{"ok": "no"}')
    assert out.code == 2, out
    assert "resume data for step 'review/approve' is not valid" in out.stderr, out.stderr


def test_list_shows_a_parent_due_when_its_child_is(project: Project) -> None:
    setup(project)
    start(project, "p1")
    child = project.json("show", "p1--review")
    deadline = child["suspended"][0]["deadline"]
    [parent] = project.json("list")  # top-level runs only
    assert (parent["run_id"], parent["status"]) == ("p1", "suspended")
    assert parent["next_due"] == deadline
    rows = {r["run_id"]: r["next_due"] for r in project.json("list", "--children")}
    assert rows == {"p1": deadline, "p1--review": deadline}


def test_resuming_the_child_by_its_own_id_continues_the_parent(project: Project) -> None:
    setup(project)
    start(project)
    child = project.json("resume", "p1--review", "--data", '{"ok": true}')
    assert child["status"] == "completed"
    parent = project.json("show", "p1")
    assert parent["status"] == "completed"
    assert parent["output"] == {"review": {"doc": "a.pdf", "ok": True}}
    assert [e["type"] for e in parent["history"]][-1] == "completed"
    # nothing is left for tick to do
    assert project.json("tick", "--now", "2030-01-01T00:00:00Z")["advanced"] == []


def test_cancel_of_the_parent_cancels_the_child(project: Project) -> None:
    setup(project)
    start(project)
    doc = project.json("cancel", "p1", "--reason", "not needed")
    assert doc["status"] == "cancelled"
    child = project.json("show", "p1--review")
    assert child["status"] == "cancelled"
    assert any("parent run p1" in str(e.get("reason")) for e in child["history"])
    assert project.run("resume", "p1--review", "--data", '{"ok": true}').code == 3
    assert project.json("pending") == []


def test_cancel_of_the_child_cancels_the_parent(project: Project) -> None:
    setup(project)
    start(project)
    project.json("cancel", "p1--review")
    assert project.json("show", "p1")["status"] == "cancelled"


def test_tick_fires_a_timer_inside_a_child_and_the_parent_completes(project: Project) -> None:
    project.workflow("child", """
        name: child
        steps:
          - id: nap
            sleep: 1h
          - id: wake
    """, "def wake(ctx):\n    return {'woke': ctx.input['doc']}\n")
    project.workflow("parent", PARENT, PARENT_PY)
    doc = start(project)
    assert doc["status"] == "waiting"
    [entry] = doc["waiting"]
    assert entry["step"] == "review/nap" and entry["kind"] == "sleep"
    report = project.json("tick", "--now", entry["due_at"])
    assert ("p1", "review", "sleep", "completed") in {
        (a["run_id"], a["step"], a["reason"], a["status"]) for a in report["advanced"]}
    parent = project.json("show", "p1")
    assert parent["status"] == "completed"
    assert parent["output"] == {"review": {"woke": "a.pdf"}}


def test_tick_reports_the_parent_it_advanced(project: Project) -> None:
    project.workflow("child", """
        name: child
        steps:
          - id: poll
    """, """
        def poll(ctx):
            if ctx.run.runs < 2:
                ctx.flow.rerun("10s", {"n": ctx.run.runs})
            return {"runs": ctx.run.runs}
    """)
    project.workflow("parent", PARENT, PARENT_PY)
    start(project)
    report = project.json("tick", "--now", "2030-01-01T00:00:00Z")
    assert {(a["run_id"], a["step"], a["reason"], a["status"]) for a in report["advanced"]} == {
        ("p1--review", "poll", "rerun", "completed"),
        ("p1", "review", "rerun", "completed"),
    }
    assert project.json("show", "p1")["output"] == {"review": {"runs": 2}}


def test_child_suspension_timing_out_with_fail_fails_the_parent(project: Project) -> None:
    setup(project, CHILD_WAIT.replace("wait: true", "wait: true\n        timeout: 1h\n"
                                      "        on_timeout: fail"))
    start(project)
    out = project.run("tick", "--now", "2030-01-01T00:00:00Z")
    assert out.code == 1
    parent = project.json("show", "p1")
    assert parent["status"] == "failed"
    assert parent["error"]["type"] == "TimeoutError"


def test_pending_lists_a_child_suspension_once_under_the_top_level_run(project: Project) -> None:
    setup(project)
    start(project)
    rows = project.json("pending")
    assert len(rows) == 1
    [row] = rows
    assert row["run_id"] == "p1"
    assert row["path"] == ["review", "approve"]
    assert row["step"] == "review/approve"
    assert row["resume_schema"]["required"] == ["ok"]
    assert " resume p1 --step review/approve --data " in row["resume_command"]


def test_two_levels_of_nesting(project: Project) -> None:
    setup(project)
    project.workflow("grand", """
        name: grand
        steps:
          - id: outer
            workflow: parent
    """)
    doc = project.json("start", "grand", "--run-id", "g")
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["path"] == ["outer", "review", "approve"]
    done = project.json("resume", "g", "--step", "outer/review/approve", "--data", '{"ok": true}')
    assert done["status"] == "completed"
    assert done["output"] == {"review": {"doc": "a.pdf", "ok": True}}


def test_bad_addresses_are_refused(project: Project) -> None:
    setup(project)
    start(project)
    assert project.run("resume", "p1", "--step", "review/nope", "--data", "{}").code == 4
    assert project.run("resume", "p1", "--step", "prepare/x", "--data", "{}").code in (3, 4)
    assert project.run("resume", "p1", "--step", "review[", "--data", "{}").code == 2
    assert project.run("resume", "p1", "--step", "nope/approve", "--data", "{}").code == 4


@pytest.mark.parametrize(("manifest", "needle"), [
    ("""
        name: parent
        steps:
          - id: a
            workflow: nosuch
     """, "key 'workflow': " ),
    ("""
        name: parent
        steps:
          - id: a
          - id: b
            needs: []
            workflow: child
            input_from: a
     """, "key 'input_from': refers to 'a', which is not a step this one needs"),
    ("""
        name: parent
        steps:
          - id: a
            input_from: a
     """, "key 'input_from': applies only to a step with 'workflow:'"),
    ("""
        name: parent
        steps:
          - id: a
          - id: b
            wait: true
            foreach: a
     """, "key 'foreach': applies to code and workflow steps only"),
    ("""
        name: parent
        steps:
          - id: a
            workflow: Not_A_Name
     """, "key 'workflow': must name a workflow"),
    ("""
        name: parent
        steps:
          - id: a
            workflow: child
            handler: a
     """, "key 'handler': does not apply"),
])
def test_validate_checks_the_new_keys(project: Project, manifest: str, needle: str) -> None:
    project.workflow("child", "name: child\nsteps:\n  - id: x\n", "def x(ctx):\n    return 1\n")
    project.workflow("parent", manifest, "def a(ctx):\n    return [1]\n")
    out = project.run("validate", "parent")
    assert out.code == 2, out.stderr
    assert needle in out.stderr.replace("\n", " ")
    assert "parent.yaml" in out.stderr
    assert project.run("start", "parent").code == 2
    assert project.store().run_ids() == []


def test_validate_names_the_unknown_child_workflow(project: Project) -> None:
    project.workflow("parent", """
        name: parent
        steps:
          - id: a
            workflow: nosuch
    """)
    out = project.run("validate", "parent")
    assert out.code == 2
    assert "step 'a': key 'workflow': " in out.stderr
    assert "no workflow 'nosuch'" in out.stderr


def test_validate_refuses_workflows_that_nest_each_other(project: Project) -> None:
    project.workflow("ping", "name: ping\nsteps:\n  - id: a\n    workflow: pong\n")
    project.workflow("pong", "name: pong\nsteps:\n  - id: b\n    workflow: ping\n")
    project.workflow("self", "name: self\nsteps:\n  - id: c\n    workflow: self\n")
    for name in ("ping", "self"):
        out = project.run("validate", name)
        assert out.code == 2
        assert "cycle" in out.stderr and "cannot run itself" in out.stderr


def test_cancel_while_the_child_runs_cancels_the_child_too(project: Project) -> None:
    project.workflow("child", """
        name: child
        steps:
          - id: look
          - id: approve
            wait: true
    """, """
        import subprocess, sys

        def look(ctx):
            state = ctx.input["state"]
            subprocess.run([sys.executable, "-m", "wfrun", "--state-dir", state, "cancel", "p1"],
                           check=True, capture_output=True)
            return "looked"
    """)
    project.workflow("parent", """
        name: parent
        steps:
          - id: review
            workflow: child
    """)
    doc = project.json("start", "parent", "--run-id", "p1", "--input",
                       json.dumps({"state": str(project.state)}))
    assert doc["status"] == "cancelled"
    assert doc["steps"]["review"]["child_run_id"] == "p1--review"
    child = project.json("show", "p1--review")
    assert child["status"] == "cancelled"
    assert child["steps"]["look"] == {**child["steps"]["look"], "status": "completed",
                                      "output": "looked"}
    assert project.json("pending") == []


def test_a_parent_that_cannot_be_told_now_is_told_by_a_later_tick(project: Project) -> None:
    setup(project)
    start(project)
    manifest = project.workflows / "parent.yaml"
    saved = manifest.read_text()
    manifest.unlink()
    out = project.run("resume", "p1--review", "--data", '{"ok": true}', "--json")
    assert out.code == 0  # the child's data is accepted and kept
    assert out.json()["status"] == "completed"
    assert "parent run p1 of run p1--review was not updated" in out.stderr
    assert project.json("show", "p1--review")["status"] == "completed"
    failing = project.run("tick", "--now", "2030-01-01T00:00:00Z")
    assert failing.code == 1 and "next 'wfrun tick' tries again" in failing.stderr
    manifest.write_text(saved)
    report = project.json("tick", "--now", "2030-01-01T00:00:00Z")
    assert ("p1", "review", "recovered", "completed") in {
        (a["run_id"], a["step"], a["reason"], a["status"]) for a in report["advanced"]}
    assert project.json("show", "p1")["output"] == {"review": {"doc": "a.pdf", "ok": True}}


def _start_parent_whose_child_fails(project: Project, times: int = 1) -> None:
    """Run p1 of `parent`, whose `workflow:` step's child run p1--call fails, as does any child
    run after it, until `times` executions have failed (counted in a marker file)."""
    project.workflow("child", """
        name: child
        steps:
          - id: flaky
    """, """
        def flaky(ctx):
            with open(ctx.input["marker"], "a+") as fh:
                fh.write("x")
                fh.seek(0)
                if len(fh.read()) <= ctx.input["failures"]:
                    raise RuntimeError("fails for now")
            return "works now"
    """)
    project.workflow("parent", """
        name: parent
        steps:
          - id: call
            workflow: child
    """)
    marker = str(project.root / "marker")
    out = project.run("start", "parent", "--run-id", "p1", "--input",
                      json.dumps({"marker": marker, "failures": times}), "--json")
    assert out.code == 1


def test_retry_of_a_failed_workflow_step_starts_a_new_child_run(project: Project) -> None:
    _start_parent_whose_child_fails(project)
    before = project.snapshots()
    alone = project.run("retry", "p1--call", "--step", "nope")  # refused: nothing changes
    assert alone.code == 4 and project.snapshots() == before
    done = project.json("retry", "p1", "--reason", "fixed")
    assert done["status"] == "completed"
    assert done["output"] == "works now"
    assert done["steps"]["call"]["child_run_id"] == "p1--call-r2"
    assert project.json("show", "p1--call")["status"] == "failed"  # the first attempt is kept


def test_retrying_a_child_run_alone_continues_its_failed_parent_with_that_child(
        project: Project) -> None:
    _start_parent_whose_child_fails(project)
    out = project.run("retry", "p1--call", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["status"] == "completed"
    assert "parent run p1 continues from step 'call' with this run: it is completed" \
        in out.json()["warnings"]
    parent = project.json("show", "p1")
    assert parent["status"] == "completed" and parent["output"] == "works now"
    assert parent["steps"]["call"]["child_run_id"] == "p1--call"  # no new child run
    retried = [e for e in parent["history"] if e["type"] == "retried"]
    assert [(e["step"], e["source"], e["child"]) for e in retried] == [
        ("call", "child", "p1--call")]
    assert project.run("retry", "p1").code == 3  # nothing left to retry


def test_a_child_retried_on_its_own_that_fails_again_leaves_its_parent_failed(
        project: Project) -> None:
    _start_parent_whose_child_fails(project)
    (project.root / "marker").unlink()  # so that it fails again
    out = project.run("retry", "p1--call")
    assert out.code == 1
    assert project.json("show", "p1")["status"] == "failed"
    assert project.json("retry", "p1")["status"] == "completed"  # the parent's own retry


def test_the_testing_harness_moves_time_to_a_timer_inside_a_child(project: Project) -> None:
    from wfrun.testing import Harness

    project.workflow("child", """
        name: child
        steps:
          - id: nap
            sleep: 2h
          - id: wake
    """, "def wake(ctx):\n    return {'woke': ctx.input['doc']}\n")
    project.workflow("parent", PARENT, PARENT_PY)
    harness = Harness(project.workflows, project.state)
    assert harness.start("parent", {"doc": "x.pdf"}, run_id="p1")["status"] == "waiting"
    report = harness.advance_to_due("p1")
    assert ("p1", "review", "sleep", "completed") in {
        (a["run_id"], a["step"], a["reason"], a["status"]) for a in report["advanced"]}
    assert harness.show("p1")["output"] == {"review": {"woke": "x.pdf"}}


def test_validate_names_an_invalid_child_workflow_and_the_step_using_it(project: Project) -> None:
    project.workflow("child", "name: child\nsteps:\n  - id: x\n    bogus: 1\n")
    project.workflow("parent", PARENT, PARENT_PY)
    out = project.run("validate", "parent")
    assert out.code == 2
    message = " ".join(out.stderr.split())
    assert "parent.yaml: step 'review': key 'workflow': the child workflow 'child' is invalid:" \
        in message
    assert "child.yaml: step 'x': key 'bogus': unknown key" in message


def test_pending_by_workflow_finds_a_child_runs_suspension(project: Project) -> None:
    """`pending --workflow child` lists the child's suspension (under its top-level run, as
    always); `--workflow parent` lists it too; another workflow's filter does not."""
    setup(project)
    start(project)
    project.workflow("other", "steps:\n  - {id: gate, wait: true}\n")
    project.json("start", "other", "--run-id", "o1")
    by_child = project.json("pending", "--workflow", "child")
    assert [(r["run_id"], r["step"]) for r in by_child] == [("p1", "review/approve")]
    assert project.json("pending", "--workflow", "parent") == by_child
    assert [r["run_id"] for r in project.json("pending", "--workflow", "other")] == ["o1"]
    assert {r["run_id"] for r in project.json("pending")} == {"p1", "o1"}


def test_pending_by_workflow_keeps_a_suspension_for_every_workflow_on_its_path(
        project: Project) -> None:
    """top -> each (foreach, workflow: mid) -> inner (workflow: leaf) -> gate (wait): the
    suspension is listed for top, for the middle workflow mid, and for leaf; a second top-level
    run's suspension with no mid on its path is not listed for mid."""
    project.workflow("top", """
        name: top
        steps:
          - id: make
          - id: each
            foreach: make
            workflow: mid
          - id: direct
            needs: []
            workflow: leaf
    """, "def make(ctx):\n    return [1]\n")
    project.workflow("mid", "name: mid\nsteps:\n  - {id: inner, workflow: leaf}\n")
    project.workflow("leaf", "name: leaf\nsteps:\n  - {id: gate, wait: true}\n")
    assert project.run("start", "top", "--run-id", "t5").code == 0
    listed = {(r["run_id"], r["step"]) for r in project.json("pending")}
    assert listed == {("t5", "each[0]/inner/gate"), ("t5", "direct/gate")}
    assert {(r["run_id"], r["step"]) for r in project.json("pending", "--workflow", "top")} \
        == listed
    assert {(r["run_id"], r["step"]) for r in project.json("pending", "--workflow", "leaf")} \
        == listed
    by_mid = project.json("pending", "--workflow", "mid")
    assert [(r["run_id"], r["workflow"], r["step"]) for r in by_mid] == [
        ("t5", "top", "each[0]/inner/gate")]


def test_retrying_an_older_child_run_says_that_its_parent_stays_failed(project: Project) -> None:
    _start_parent_whose_child_fails(project, times=2)
    assert project.run("retry", "p1").code == 1  # its second child run, p1--call-r2, fails too
    older = project.run("retry", "p1--call")  # the first child run, retried: it completes
    assert older.code == 0
    assert "run p1--call is the child run of step 'call' of run p1, which stays failed: its " \
        "failure is not this run's; 'wfrun retry p1' retries it" in older.stderr
    assert project.json("show", "p1")["status"] == "failed"
