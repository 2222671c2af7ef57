"""`actions:` and `approvals:` of a manifest's steps, and the actions each step knows."""

from __future__ import annotations

import re
from typing import Any

from wfrun._manifest_checker import Checker, shown
from wfrun._specs import Approvals, StepSpec

MAX_ACTION = 100  # characters in an action's name (as `resume --action` takes)
APPROVER_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
APPROVAL_ACTIONS = ("approved", "rejected")  # the known actions of a step with `approvals:`


def parse_approvals(check: Checker, raw: dict[str, Any], step_id: str) -> Approvals | None:
    """`approvals: {required: N, approvers: [names]}` of a wait step (N of M decide)."""
    if "approvals" not in raw:
        return None
    value = raw["approvals"]
    if not isinstance(value, dict):
        raise check.fail("must be a mapping such as {required: 2, approvers: [alice, bob, "
                         "carol]}", step=step_id, key="approvals")
    unknown = [k for k in value if k not in ("required", "approvers")]
    if unknown:
        raise check.fail(f"has the unknown key {shown(unknown[0])} (known keys: required, "
                         "approvers)", step=step_id, key="approvals")
    approvers = value.get("approvers")
    if not isinstance(approvers, list) or not approvers:
        raise check.fail("needs 'approvers', a list of names such as [alice, bob, carol]",
                         step=step_id, key="approvals")
    for name in approvers:
        if not isinstance(name, str) or not APPROVER_PATTERN.fullmatch(name):
            raise check.fail(f"the approver {shown(name)} is not a name (1 to 100 letters, digits "
                             "or '_.@-')", step=step_id, key="approvals")
        if approvers.count(name) > 1:
            raise check.fail(f"lists the approver {name!r} twice", step=step_id,
                             key="approvals")
    required = value.get("required")
    if isinstance(required, bool) or not isinstance(required, int) \
            or not 1 <= required <= len(approvers):
        raise check.fail(f"'required' must be a whole number from 1 to {len(approvers)} (the "
                         f"number of approvers), not {shown(required)}", step=step_id,
                         key="approvals")
    return Approvals(required, tuple(approvers))


def approval_actions(check: Checker, raw: dict[str, Any], step_id: str) -> tuple[str, ...]:
    """The actions of a step with `approvals:`: approved and rejected (an `actions:` list may
    only repeat them)."""
    declared = parse_actions(check, raw, step_id)
    if declared is not None and set(declared) != set(APPROVAL_ACTIONS):
        raise check.fail("a step with approvals: takes the actions approved and rejected; "
                         "leave out actions:", step=step_id, key="actions")
    return APPROVAL_ACTIONS


def parse_actions(check: Checker, raw: dict[str, Any], step_id: str) -> tuple[str, ...] | None:
    """`actions:`: the actions the step takes, as a list of distinct names."""
    if "actions" not in raw:
        return None
    actions = raw["actions"]
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        hint = ""
        if isinstance(actions, bool) or (isinstance(actions, list)
                                         and any(isinstance(a, bool) for a in actions)):
            hint = " (YAML reads yes/no/on/off/true/false as booleans: quote the action)"
        raise check.fail(f"must be a list of action names, such as [approved, rejected]{hint}",
                         step=step_id, key="actions")
    if not actions:
        raise check.fail("must name at least one action (leave the key out for a step that "
                         "takes none)", step=step_id, key="actions")
    for action in actions:
        if not 0 < len(action) <= MAX_ACTION or not action.isprintable():
            raise check.fail(f"{action!r} is not an action name (1 to {MAX_ACTION} printable "
                             "characters)", step=step_id, key="actions")
        if actions.count(action) > 1:
            raise check.fail(f"lists the action {action!r} twice", step=step_id, key="actions")
    return tuple(actions)


def with_known_actions(check: Checker, steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
    """Each step with its known actions: its `actions:` if declared, else every action a
    `when:` of another step names for it (manifest order). A `when:` naming an action that
    its target's `actions:` does not list is an error, reported on the step with the `when:`."""
    named: dict[str, list[str]] = {sid: [] for sid in steps}
    for spec in steps.values():
        for target, actions in spec.when.items():
            declared = steps[target].actions
            for action in actions:
                if declared is not None and action not in declared \
                        and steps[target].approvals is not None:
                    raise check.fail(
                        f"names the action {action!r} for step {target!r}, which has approvals: "
                        "and so takes the actions approved and rejected only; fix the name",
                        step=spec.id, key="when")
                if declared is not None and action not in declared:
                    raise check.fail(
                        f"names the action {action!r} for step {target!r}, whose 'actions:' "
                        f"are {', '.join(declared)}; fix the name or add it to that list",
                        step=spec.id, key="when")
                if action not in named[target]:
                    named[target].append(action)
    return {sid: _with_actions(spec, tuple(named[sid]))
            if spec.actions is None and named[sid] else spec for sid, spec in steps.items()}


def _with_actions(spec: StepSpec, known_actions: tuple[str, ...]) -> StepSpec:
    values = {name: getattr(spec, name) for name in StepSpec.__slots__}
    values["known_actions"] = known_actions
    return StepSpec(**values)
