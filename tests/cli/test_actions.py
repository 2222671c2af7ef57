"""SPEC §2 "Actions are checked" (issue 17, point 2): the `actions:` key, a step's known actions,
`validate` on an `actions:` list a `when:` contradicts, resumes with a wrong or missing action,
and `ctx.flow.route()` to an action nobody matches.
"""

from __future__ import annotations

import json

import pytest
from conftest import Outcome, Project

from wfrun._specs import Workflow
from wfrun.engine._actions import check_resume_action
from wfrun.errors import UsageError
from wfrun.loader import load_workflow
from wfrun.model import RUNNING, SUSPENDED, WAITING, StepState

from .test_examples import use


def one_line_error(out: Outcome) -> str:
    """The single `error: ...` line a refused command prints on stderr."""
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


REVIEW = """
steps:
  - id: review
    wait: true
    {actions}
  - id: ship
    when: {{review: [approved, fine]}}
  - id: redo
    needs: [review]
    when: {{review: rejected}}
"""
REVIEW_PY = "def ship(ctx):\n    return 'shipped'\n\ndef redo(ctx):\n    return 'redone'\n"


# -- known actions and validate ----------------------------------------------------------------


def test_known_actions_come_from_actions_or_else_from_the_whens_in_order(project: Project) -> None:
    derived = project.workflow("derived", REVIEW.format(actions=""), REVIEW_PY)
    declared = project.workflow("declared", REVIEW.format(
        actions="actions: [rejected, fine, approved, later]"), REVIEW_PY)
    assert load_workflow(str(derived)).actions_for("review") == ["approved", "fine", "rejected"]
    # declared: exactly the list, in its order, even an action no when: names
    assert load_workflow(str(declared)).actions_for("review") == [
        "rejected", "fine", "approved", "later"]
    workflow = load_workflow(str(declared))
    assert workflow.actions_for("ship") == []  # nobody branches on it: it takes none
    assert workflow.actions_for("no-such-step") == []
    for name in ("derived", "declared"):
        assert project.run("validate", name).code == 0


def test_validate_reports_a_when_that_an_actions_list_contradicts(project: Project) -> None:
    project.workflow("typo", REVIEW.format(actions="actions: [approved, rejected]"), REVIEW_PY)
    out = project.run("validate", "typo")
    assert out.code == 2
    line = one_line_error(out)
    path = str(project.workflows / "typo.yaml")
    assert line.startswith(f"error: {path}: step 'ship': key 'when': ")
    assert "'fine'" in line and "review" in line and "approved, rejected" in line
    [row] = json.loads(project.run("validate", "typo", "--json").stdout)
    assert row["ok"] is False and row["exit_code"] == 2 and "key 'when'" in row["error"]
    # refused at start too, before anything is written
    assert project.run("start", "typo").code == 2
    assert project.snapshots() == {}


@pytest.mark.parametrize(("actions", "message"), [
    ("actions: approved", "must be a list of action names"),
    ("actions: []", "must name at least one action"),
    ("actions: [approved, yes]", "quote the action"),
    ("actions: [approved, approved, rejected, fine]", "lists the action 'approved' twice"),
    ("actions: [approved, '', rejected, fine]", "is not an action name"),
])
def test_an_invalid_actions_list_is_refused_naming_step_and_key(
    project: Project, actions: str, message: str
) -> None:
    project.workflow("bad", REVIEW.format(actions=actions), REVIEW_PY)
    out = project.run("validate", "bad")
    assert out.code == 2
    line = one_line_error(out)
    assert "step 'review': key 'actions': " in line and message in line, line


@pytest.mark.parametrize("step", [
    "{id: nap, sleep: 1h, actions: [done]}",
    "{id: child, workflow: other, actions: [done]}",
])
def test_actions_apply_only_to_steps_that_can_be_resumed_or_route(project: Project,
                                                                   step: str) -> None:
    project.workflow("other", "steps:\n  - {id: gate, wait: true}\n")
    project.workflow("kinds", f"steps:\n  - {step}\n")
    out = project.run("validate", "kinds")
    assert out.code == 2
    assert "key 'actions': does not apply" in one_line_error(out)


def test_a_code_step_may_declare_its_actions(project: Project) -> None:
    project.workflow("code", """
        steps:
          - {id: decide, actions: [left, right]}
          - {id: left, when: {decide: left}}
        """, "def decide(ctx):\n    return 1\n\ndef left(ctx):\n    return 2\n")
    assert project.run("validate", "code").code == 0


# -- check_resume_action, on its own ----------------------------------------------------------

CODE_REVIEW = """
steps:
  - id: review
  - id: ship
    when: {review: approved}
  - id: redo
    needs: [review]
    when: {review: rejected}
  - id: nap
    needs: []
    wait: true
  - id: after-nap
    needs: [nap]
"""


def _workflow(project: Project, manifest: str) -> Workflow:
    return load_workflow(str(project.workflow("w", manifest)), check_code=False)


@pytest.mark.parametrize(("action", "words"), [
    ("approve", ["step 'review' of run R1 takes the action approved, fine or rejected, not "
                 "'approve'", "--action"]),
    ("", ["not ''"]),
    ("Approved", ["not 'Approved'"]),
])
def test_an_action_outside_the_known_ones_is_refused_naming_them(
    project: Project, action: str, words: list[str]
) -> None:
    workflow = _workflow(project, REVIEW.format(actions=""))
    with pytest.raises(UsageError) as caught:
        check_resume_action(workflow, "review", action, "R1")
    assert caught.value.exit_code == 2
    for word in words:
        assert word in caught.value.message
    for known in ("approved", "fine", "rejected"):
        check_resume_action(workflow, "review", known, "R1")  # each known one is taken


def test_a_step_with_no_known_actions_takes_none(project: Project) -> None:
    workflow = _workflow(project, CODE_REVIEW)
    with pytest.raises(UsageError) as caught:
        check_resume_action(workflow, "nap", "approved", "R1")
    assert "step 'nap' of run R1 takes no action" in caught.value.message
    assert "'approved'" in caught.value.message
    check_resume_action(workflow, "nap", None, "R1")  # without one it is fine


def test_no_action_is_refused_when_every_dependant_waits_for_one(project: Project) -> None:
    workflow = _workflow(project, REVIEW.format(actions="actions: [approved, rejected, fine]"))
    with pytest.raises(UsageError) as caught:
        check_resume_action(workflow, "review", None, "R1")
    assert caught.value.message.endswith(
        "give one of approved, rejected, fine (--action NAME, or &action=NAME on a resume URL)")
    assert "step 'review' of run R1 needs an action" in caught.value.message


def test_no_action_is_taken_when_some_dependant_runs_without_one(project: Project) -> None:
    workflow = _workflow(project, REVIEW.format(actions="") + "  - {id: log, needs: [review]}\n")
    check_resume_action(workflow, "review", None, "R1")
    lone = _workflow(project, "steps:\n  - {id: last, wait: true, actions: [done]}\n")
    check_resume_action(lone, "last", None, "R1")  # nothing depends on it


def test_a_code_step_without_an_action_is_refused_only_if_nothing_can_set_one(
    project: Project
) -> None:
    workflow = _workflow(project, CODE_REVIEW)
    check_resume_action(workflow, "review", None, "R1")  # no state: it may route itself
    suspended = StepState(status=SUSPENDED, pause={"kind": "suspend", "nonce": "n"})
    with pytest.raises(UsageError):
        check_resume_action(workflow, "review", None, "R1", suspended)
    routed = StepState(status=SUSPENDED, action="approved", pause={"kind": "suspend"})
    check_resume_action(workflow, "review", None, "R1", routed)  # it routed before suspending
    asked = StepState(status=SUSPENDED, pause={"kind": "suspend", "ask": 1})
    check_resume_action(workflow, "review", None, "R1", asked)  # executes again: may route
    rerun = StepState(status=WAITING, pause={"kind": "rerun"})
    check_resume_action(workflow, "review", None, "R1", rerun)
    executing = StepState(status=RUNNING)
    check_resume_action(workflow, "review", None, "R1", executing)
    with pytest.raises(UsageError):  # a wrong action is refused whatever the state
        check_resume_action(workflow, "review", "approve", "R1", routed)


def test_an_iteration_is_checked_against_its_step_but_needs_no_action(project: Project) -> None:
    workflow = _workflow(project, """
        steps:
          - id: items
          - {id: review, foreach: items, actions: [ok, nope]}
          - {id: after, when: {review: ok}}
        """)
    with pytest.raises(UsageError) as caught:
        check_resume_action(workflow, "review[2]", "maybe", "R1")
    assert "step 'review[2]' of run R1 takes the action ok or nope, not 'maybe'" in \
        caught.value.message
    check_resume_action(workflow, "review[2]", "ok", "R1")
    check_resume_action(workflow, "review[2]", None, "R1")  # when: never matches an iteration


def test_a_step_the_workflow_no_longer_has_is_left_to_the_caller(project: Project) -> None:
    check_resume_action(_workflow(project, CODE_REVIEW), "gone", "x", "R1")


# -- through `wfrun resume` (SPEC §2: refused before anything is written) ----------------------


def _started(project: Project, name: str, *args: str) -> str:
    use(project, name)
    doc = project.json("start", name, *args)
    assert doc["status"] == "suspended", doc
    return str(doc["run_id"])


def test_expense_approval_refuses_a_mistyped_action_and_leaves_the_run(project: Project) -> None:
    run_id = _started(project, "expense-approval", "--input", '{"user": "ann", "amount": 42}')
    before = project.snapshots()
    out = project.run("resume", run_id, "--action", "approve", "--data", '{"approved": true}')
    assert out.code == 2, (out.stdout, out.stderr)
    line = one_line_error(out)
    assert f"step 'manager-approval' of run {run_id} takes the action approved or rejected, " \
           "not 'approve'" in line
    assert out.stdout == ""
    assert project.snapshots() == before  # nothing written, not even history
    done = project.json("resume", run_id, "--action", "approved", "--data", '{"approved": true}')
    assert done["status"] == "completed" and done["steps"]["pay"]["status"] == "completed"


def test_expense_approval_refuses_a_resume_without_an_action(project: Project) -> None:
    run_id = _started(project, "expense-approval", "--input", '{"user": "ann", "amount": 42}')
    before = project.snapshots()
    out = project.run("resume", run_id, "--data", '{"approved": true}')
    assert out.code == 2, (out.stdout, out.stderr)
    assert one_line_error(out).endswith(
        "give one of approved, rejected (--action NAME, or &action=NAME on a resume URL)")
    assert project.snapshots() == before
    assert project.json("show", run_id)["status"] == "suspended"


@pytest.mark.parametrize("args", [["--action", "approved"], ["--action", "choose-c"], []],
                         ids=["approval-page-default", "unknown", "none"])
def test_conditional_branching_refuses_what_would_skip_every_path(
    project: Project, args: list[str]
) -> None:
    run_id = _started(project, "conditional-branching")
    before = project.snapshots()
    out = project.cli("resume", run_id, *args)  # a real process, as a user types it
    assert out.code == 2, (out.stdout, out.stderr)
    assert "choose-a" in one_line_error(out) and "choose-b" in out.stderr
    assert project.snapshots() == before
    done = project.json("resume", run_id, "--action", "choose-b")
    assert done["steps"]["path-b"]["status"] == "completed"


def test_a_wait_step_nobody_branches_on_takes_no_action(project: Project) -> None:
    project.workflow("gate", "steps:\n  - {id: gate, wait: true}\n  - id: after\n",
                     "def after(ctx):\n    return ctx.steps['gate'].action\n")
    run_id = project.json("start", "gate")["run_id"]
    before = project.snapshots()
    out = project.run("resume", run_id, "--action", "go")
    assert out.code == 2 and "takes no action" in one_line_error(out)
    assert project.snapshots() == before
    assert project.json("resume", run_id)["output"] is None


def test_an_iteration_resumed_by_address_with_a_wrong_action_is_refused(
    project: Project
) -> None:
    project.workflow("each", """
        steps:
          - id: items
          - {id: review, foreach: items, actions: [ok, nope]}
          - id: after
        """, """
        def items(ctx):
            return ["a", "b"]

        def review(ctx):
            ctx.flow.suspend()
            return ctx.item

        def after(ctx):
            return [it["action"] for it in ctx.steps["review"].output or []]
        """)
    doc = project.json("start", "each")
    assert [e["step"] for e in doc["suspended"]] == ["review[0]", "review[1]"]
    before = project.snapshots()
    out = project.run("resume", doc["run_id"], "--step", "review[1]", "--action", "maybe")
    assert out.code == 2
    assert "step 'review[1]' of run" in one_line_error(out) and "ok or nope, not 'maybe'" in out.stderr
    assert project.snapshots() == before
    done = project.json("resume", doc["run_id"], "--step", "review[1]", "--action", "nope")
    assert done["steps"]["review"]["iterations"][1]["action"] == "nope"


# -- ctx.flow.route() ------------------------------------------------------------------------

ROUTES = """
steps:
  - id: decide
    {actions}
  - id: only-a
    when: {{decide: a}}
  - id: a-or-b
    needs: [decide]
    when: {{decide: [a, b]}}
"""
ROUTES_PY = """
def decide(ctx):
    if "route" in ctx.input:
        ctx.flow.route(ctx.input["route"])
    if ctx.input.get("then") == "suspend":
        ctx.flow.suspend()
    if ctx.input.get("then") == "ask":
        ctx.flow.ask()
    return "decided"

def only_a(ctx):
    return "a"

def a_or_b(ctx):
    return "a-or-b"
"""


@pytest.mark.parametrize("then", ["return", "suspend", "ask"])
def test_route_to_an_action_nobody_matches_fails_the_step_naming_the_known_ones(
    project: Project, then: str
) -> None:
    project.workflow("routes", ROUTES.format(actions=""), ROUTES_PY)
    out = project.run("start", "routes", "--input", json.dumps({"route": "c", "then": then}),
                      "--json")
    assert out.code == 1, (out.stdout, out.stderr)
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["error"]["step"] == "decide" and doc["error"]["type"] == "FlowError"
    assert "routed to the action 'c', which no step matches" in doc["error"]["message"]
    assert "known actions are a or b" in doc["error"]["message"]
    assert doc["steps"]["only-a"]["status"] == doc["steps"]["a-or-b"]["status"] == "cancelled"
    # raised where the step code routed, so the failure shows that line (SPEC §5)
    assert 'line 4, in decide\n    ctx.flow.route(ctx.input["route"])' in doc["error"]["traceback"]


@pytest.mark.parametrize(("actions", "route", "ran"), [
    ("", "b", ["a-or-b"]),
    ("", None, []),                                   # clearing the action is always allowed
    ("actions: [a, b, none-of-them]", "none-of-them", []),  # declared: taken, nothing runs
])
def test_route_to_a_known_action_or_to_none_is_taken(
    project: Project, actions: str, route: str | None, ran: list[str]
) -> None:
    project.workflow("routes", ROUTES.format(actions=actions), ROUTES_PY)
    doc = project.json("start", "routes", "--input", json.dumps({"route": route}))
    assert doc["status"] == "completed" and doc["steps"]["decide"]["action"] == route
    assert [s for s in ("only-a", "a-or-b") if doc["steps"][s]["status"] == "completed"] == ran


def test_a_step_with_no_known_actions_cannot_route_as_a_resume_cannot_give_one(
        project: Project) -> None:
    # SPEC §2: a route() to an action nobody matches fails the step; with no known actions,
    # nobody matches any (and `resume --action` is refused the same way)
    project.workflow("free", "steps:\n  - id: tag\n",
                     "def tag(ctx):\n    ctx.flow.route('anything')\n    return 1\n")
    out = project.run("start", "free", "--json")
    assert out.code == 1, (out.stdout, out.stderr)
    error = out.json()["error"]
    assert error["step"] == "tag" and error["type"] == "FlowError"
    assert "routed to the action 'anything', which no step matches: it has no known actions" \
        in error["message"]
    declared = "steps:\n  - {id: tag, actions: [anything]}\n"
    project.workflow("free", declared)  # declared: taken, though no when: reads it
    doc = project.json("start", "free")
    assert doc["status"] == "completed" and doc["steps"]["tag"]["action"] == "anything"


def test_an_iteration_routing_to_an_unknown_action_fails(project: Project) -> None:
    project.workflow("each", """
        steps:
          - id: items
          - {id: tag, foreach: items, actions: [even, odd]}
        """, """
        def items(ctx):
            return [0, 1, 2]

        def tag(ctx):
            ctx.flow.route("even" if ctx.item % 2 == 0 else "three" if ctx.item == 1 else "odd")
            return ctx.item
        """)
    out = project.run("start", "each", "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["steps"]["tag"]["iterations"][1]["status"] == "failed"
    assert "'three', which no step matches" in doc["steps"]["tag"]["iterations"][1]["error"][
        "message"]


def test_approve_item_routes_small_amounts_through_its_declared_auto_action(
    project: Project
) -> None:
    use(project, "approve-item")
    doc = project.json("start", "approve-item", "--input", '{"id": "i1", "amount": 5}')
    assert doc["status"] == "completed" and doc["steps"]["check"]["action"] == "auto"
    assert doc["output"]["by"] == "auto"
