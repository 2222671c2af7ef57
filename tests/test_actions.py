"""SPEC §2 "Actions are checked" (issue 17, point 2): the `actions:` key, a step's known actions,
`validate` on an `actions:` list a `when:` contradicts, resumes with a wrong or missing action,
and `ctx.flow.route()` to an action nobody matches.
"""

from __future__ import annotations

import json

import pytest
from conftest import Outcome, Project

from wfrun.loader import load_workflow


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
