"""Issue 21 point 4, SPEC §2 N-of-M approvals: `approvals:` on a wait step, each approver
decides once with `--as NAME`; two of three approvals release, two rejections abort (the
example `release-signoff`, run through the CLI on real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import REPO, Project


@pytest.fixture
def signoff(project: Project) -> Project:
    """The project with the example workflow `release-signoff`, and run `rel` started."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"release-signoff{suffix}", project.workflows)
    doc = project.json("start", "release-signoff", "--input", '{"version": "1.4"}',
                       "--run-id", "rel")
    assert doc["status"] == "suspended"
    return project


def decide(project: Project, who: str, action: str, data: str = "{}") -> tuple[int, str]:
    out = project.run("resume", "rel", "--step", "signoff", "--as", who, "--action", action,
                      "--data", data)
    return out.code, out.stdout + out.stderr


def test_two_approvals_of_three_release(signoff: Project) -> None:
    code, _ = decide(signoff, "alice", "approved", '{"comment": "tests pass"}')
    assert code == 0
    doc = signoff.json("show", "rel")
    assert doc["status"] == "suspended"  # one approval of the two needed
    entry = doc["suspended"][0]
    assert entry["approvals"]["required"] == 2
    assert [d["by"] for d in entry["approvals"]["decisions"]] == ["alice"]
    assert [a["name"] for a in entry["approvers"]] == ["alice", "bob", "carol"]
    assert entry["approvers"][0]["decision"] == "approved"
    assert "--as bob" in entry["approvers"][1]["resume_command"]
    assert entry["approvers"][1]["resume_url"] != entry["approvers"][2]["resume_url"]
    code, _ = decide(signoff, "bob", "approved")
    assert code == 0
    doc = signoff.json("show", "rel")
    assert doc["status"] == "completed"
    out = doc["steps"]["signoff"]["output"]
    assert out["decision"] == "approved"
    assert [(d["by"], d["action"], d["source"]) for d in out["approvals"]] == [
        ("alice", "approved", "cli"), ("bob", "approved", "cli")]
    assert out["approvals"][0]["data"] == {"comment": "tests pass"}
    assert doc["steps"]["signoff"]["action"] == "approved"
    assert doc["output"] == {"released": "1.4", "approved_by": ["alice", "bob"]}
    assert doc["steps"]["abort"]["status"] == "skipped"
    approvals = [e for e in doc["history"] if e["type"] == "approval"]
    assert [(e["by"], e["action"]) for e in approvals] == [("alice", "approved"),
                                                         ("bob", "approved")]


def test_two_rejections_abort_once_approval_cannot_be_reached(signoff: Project) -> None:
    assert decide(signoff, "alice", "approved")[0] == 0
    assert decide(signoff, "carol", "rejected")[0] == 0
    assert signoff.json("show", "rel")["status"] == "suspended"  # bob may still approve
    assert decide(signoff, "bob", "rejected")[0] == 0
    doc = signoff.json("show", "rel")
    assert doc["status"] == "completed"
    assert doc["steps"]["signoff"]["output"]["decision"] == "rejected"
    assert doc["output"] == {"aborted": "1.4", "rejected_by": ["carol", "bob"]}
    assert doc["steps"]["release"]["status"] == "skipped"


def test_a_second_decision_by_the_same_approver_is_refused(signoff: Project) -> None:
    assert decide(signoff, "alice", "approved")[0] == 0
    before = signoff.snapshots()
    code, text = decide(signoff, "alice", "rejected")
    assert code == 3
    assert "alice already decided" in text and "Traceback" not in text
    assert signoff.snapshots() == before


@pytest.mark.parametrize(("args", "words"), [
    (["--as", "dave", "--action", "approved"], "'dave' is not an approver"),
    (["--action", "approved"], "alice, bob, carol"),
    (["--as", "alice"], "approved or rejected (--action NAME"),
    (["--as", "alice", "--action", "maybe"], "approved or rejected"),
])
def test_bad_decisions_exit_2_and_write_nothing(signoff: Project, args: list[str],
                                                 words: str) -> None:
    before = signoff.snapshots()
    out = signoff.run("resume", "rel", "--step", "signoff", "--data", "{}", *args)
    assert out.code == 2, out.stderr
    assert words in out.stderr
    assert signoff.snapshots() == before


def test_as_on_a_step_without_approvals_exits_2(project: Project) -> None:
    project.workflow("plain", """
        name: plain
        steps:
          - id: wait
            wait: true
    """)
    project.json("start", "plain", "--run-id", "p1")
    out = project.run("resume", "p1", "--as", "alice")
    assert out.code == 2
    assert "has no approvers" in out.stderr


def test_pending_shows_the_step_once_with_the_decisions_so_far(signoff: Project) -> None:
    decide(signoff, "carol", "approved")
    rows = signoff.json("pending")
    assert len(rows) == 1
    assert rows[0]["approvals"]["decisions"][0]["by"] == "carol"
    assert "--as NAME" in rows[0]["resume_command"]
    text = signoff.run("show", "rel").stdout
    assert "carol: approved" in text and "approvals: 1 of 2 needed" in text
    assert "resume rel --step signoff --as bob --action approved" in text


def test_the_timeout_applies_to_the_whole_step(signoff: Project) -> None:
    decide(signoff, "alice", "approved")
    doc = signoff.json("tick", "--now", "2099-01-01T00:00:00Z")
    assert doc is not None
    assert signoff.json("show", "rel")["status"] == "cancelled"


@pytest.mark.parametrize(("approvals", "words"), [
    ("{required: 4, approvers: [a, b, c]}", "from 1 to 3"),
    ("{required: 0, approvers: [a]}", "from 1 to 1"),
    ("{required: 1, approvers: [a, a]}", "twice"),
    ("{required: 1, approvers: ['a b']}", "is not a name"),
    ("{required: 1}", "needs 'approvers'"),
    ("{required: 1, approvers: [a], quorum: 2}", "unknown key"),
    ("[a, b]", "must be a mapping"),
])
def test_the_manifest_checks_approvals(project: Project, approvals: str, words: str) -> None:
    project.workflow("bad", f"""
        name: bad
        steps:
          - id: gate
            wait: true
            approvals: {approvals}
    """)
    out = project.run("validate", "bad")
    assert out.code == 2
    assert "bad.yaml" in out.stdout + out.stderr
    assert "step 'gate'" in out.stdout + out.stderr and "key 'approvals'" in out.stdout + out.stderr
    assert words in out.stdout + out.stderr


def test_approvals_apply_to_wait_steps_only(project: Project, tmp_path: Path) -> None:
    project.workflow("bad", """
        name: bad
        steps:
          - id: gate
            approvals: {required: 1, approvers: [a]}
    """, "def gate(ctx):\n    return 1\n")
    out = project.run("validate", "bad")
    assert out.code == 2
    assert "wait steps only" in out.stdout + out.stderr


def test_an_approvals_step_in_a_child_run_is_decided_by_its_address(signoff: Project) -> None:
    signoff.workflow("outer", """
        name: outer
        steps:
          - id: sign
            workflow: release-signoff
          - id: after
    """, "def after(ctx):\n    return ctx.steps['sign'].output\n")
    doc = signoff.json("start", "outer", "--input", '{"version": "3.0"}', "--run-id", "o1")
    entry = doc["suspended"][0]
    assert entry["step"] == "sign/signoff"
    assert "resume o1 --step sign/signoff --as alice" in entry["approvers"][0]["resume_command"]
    assert "/runs/o1--sign/steps/signoff/" in entry["approvers"][0]["resume_url"]
    for who in ("bob", "carol"):
        out = signoff.run("resume", "o1", "--step", "sign/signoff", "--as", who, "--action",
                          "approved", "--data", "{}")
        assert out.code == 0, out.stderr
    doc = signoff.json("show", "o1")
    assert doc["status"] == "completed"
    assert doc["output"] == {"released": "3.0", "approved_by": ["bob", "carol"]}


def test_on_timeout_resume_keeps_the_decisions_made(project: Project) -> None:
    from wfrun.testing import Harness

    project.workflow("quorum", """
        name: quorum
        steps:
          - id: vote
            wait: true
            timeout: 1h
            on_timeout: resume
            approvals: {required: 2, approvers: [a, b, c]}
          - id: after
            needs: [vote]
    """, "def after(ctx):\n    return ctx.steps['vote'].output\n")
    harness = Harness(project.workflows, project.state)
    harness.start("quorum", run_id="q1")
    harness.resume("q1", {"why": "fine"}, action="approved", approver="a")
    harness.advance("2h")
    doc = harness.show("q1")
    assert doc["status"] == "completed"
    output = doc["output"]
    assert output["decision"] is None
    assert [(d["by"], d["action"], d["data"]) for d in output["approvals"]] == [
        ("a", "approved", {"why": "fine"})]


@pytest.mark.parametrize("store", ["file", "postgresql"])
def test_a_sign_off_on_either_store(project: Project, store: str) -> None:
    """The decisions live in the run (its pause), so the file store and PostgreSQL keep them
    alike: a second decision is refused, two rejections abort."""
    import _pg

    from wfrun.errors import ConflictError
    from wfrun.testing import Harness

    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"release-signoff{suffix}", project.workflows)

    def check(state: str) -> None:
        harness = Harness(project.workflows, state)
        doc = harness.start("release-signoff", {"version": "5"}, run_id="s1")
        assert [a["name"] for a in doc["suspended"][0]["approvers"]] == ["alice", "bob", "carol"]
        harness.resume("s1", {}, action="rejected", approver="bob")
        with pytest.raises(ConflictError):
            harness.resume("s1", {}, action="approved", approver="bob")
        assert harness.show("s1")["suspended"][0]["approvals"]["decisions"][0]["by"] == "bob"
        done = harness.resume("s1", {}, action="rejected", approver="alice")
        assert done["status"] == "completed"
        assert done["output"] == {"aborted": "5", "rejected_by": ["bob", "alice"]}

    if store == "file":
        check(str(project.state))
    else:
        with _pg.schema() as url:
            check(url)


def test_a_when_naming_another_action_of_an_approvals_step_is_an_error(project: Project) -> None:
    project.workflow("x", """
        name: x
        steps:
          - id: s
            wait: true
            approvals: {required: 1, approvers: [a]}
          - id: t
            wait: true
            when: {s: approve}
    """)
    out = project.run("validate", "x")
    assert out.code == 2
    assert "step 't'" in out.stderr and "key 'when'" in out.stderr
    assert "approved and rejected only" in out.stderr
