"""N-of-M approvals (SPEC §2, `approvals:` on a wait step): each approver decides once, with
their own links or `--as NAME`; the step completes with action `approved` once `required`
approvals arrived, or `rejected` once so many rejections arrived that they no longer can.

The gate is kept in the step's pause (`pause["approvals"]`: required, approvers, decisions),
fixed when the step suspends, so links, display and decisions read the run alone."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import StepSpec
from wfrun.durations import to_iso
from wfrun.errors import ConflictError, UsageError
from wfrun.model import PAUSE_SUSPEND, SUSPENDED, StepState

from ._actions import GIVEN, either
from ._history import Events, event

APPROVED = "approved"
REJECTED = "rejected"


def gate_of(spec: StepSpec) -> dict[str, Any]:
    """What a step with `approvals:` keeps in its pause when it suspends (else nothing)."""
    if spec.approvals is None:
        return {}
    return {"approvals": {"required": spec.approvals.required,
                          "approvers": list(spec.approvals.approvers), "decisions": []}}


def open_gate(state: StepState | None) -> dict[str, Any] | None:
    """The approvals gate of a suspended step, or None if it has none (or is not suspended)."""
    if state is None or state.status != SUSPENDED or not state.pause \
            or state.pause.get("kind") != PAUSE_SUSPEND:
        return None
    gate = state.pause.get("approvals")
    return gate if isinstance(gate, dict) else None


def check_approver(spec: StepSpec, state: StepState | None, name: str, run_id: str,
                   approver: str | None, action: str | None) -> None:
    """Refuse, before anything is written, a resume that names an approver for a step without
    approvals (UsageError), none for one with them (UsageError, naming the approvers), an
    unknown approver (UsageError), no action, or a second decision (ConflictError)."""
    gate = open_gate(state)
    approvers = list(gate["approvers"]) if gate else list(
        spec.approvals.approvers if spec.approvals else ())
    if not approvers:
        if approver is not None:
            raise UsageError(f"step '{name}' of run {run_id} has no approvers; resume it "
                             "without --as")
        return
    if approver is None:
        raise UsageError(f"step '{name}' of run {run_id} is decided by its approvers "
                         f"({', '.join(approvers)}); say who decides with --as NAME")
    if approver not in approvers:
        raise UsageError(f"{approver!r} is not an approver of step '{name}' of run {run_id}; "
                         f"its approvers are {either(approvers)}")
    if action is None:
        raise UsageError(f"a decision on step '{name}' of run {run_id} needs an action: "
                         f"{APPROVED} or {REJECTED} ({GIVEN})")
    if action not in (APPROVED, REJECTED):
        raise UsageError(f"a decision on step '{name}' of run {run_id} is {APPROVED} or "
                         f"{REJECTED}, not {action!r}; give one of those ({GIVEN})")
    if gate is not None:
        _refuse_second(gate, name, run_id, approver)


def _refuse_second(gate: dict[str, Any], name: str, run_id: str, approver: str) -> None:
    for decision in gate["decisions"]:
        if decision["by"] == approver:
            raise ConflictError(
                f"{approver} already decided on step '{name}' of run {run_id} "
                f"({decision['action']} at {decision['at']}); each approver decides once")


def decide(run_id: str, state: StepState, name: str, approver: str, data: Any,
           action: str, request: dict[str, Any], now: datetime,
           events: Events) -> tuple[Any, str] | None:
    """Record one approver's decision in the step's gate (under the run's lock), as its own
    `approval` history event. Returns (output, action) for the step once the decision is
    reached, else None (the step stays suspended). ConflictError if the approver decided."""
    gate = open_gate(state)
    if gate is None:
        raise ConflictError(f"step '{name}' of run {run_id} is {state.status} and takes no "
                            "decision now")
    _refuse_second(gate, name, run_id, approver)
    source = request.get("source")
    gate["decisions"].append({"by": approver, "action": action, "data": data,
                              "at": to_iso(now), "source": source})
    events.append(event(now, "approval", name, by=approver, action=action, source=source))
    decision = outcome(gate)
    if decision is None:
        return None
    return {"decision": decision, "approvals": list(gate["decisions"])}, decision


def outcome(gate: dict[str, Any]) -> str | None:
    """`approved` once `required` approvals arrived, `rejected` once they no longer can,
    else None (still open)."""
    actions = [d["action"] for d in gate["decisions"]]
    approvals = actions.count(APPROVED)
    if approvals >= gate["required"]:
        return APPROVED
    undecided = len(gate["approvers"]) - len(actions)
    if approvals + undecided < gate["required"]:
        return REJECTED
    return None


def timed_out_output(state: StepState) -> Any:
    """The output of an approvals step resumed by its deadline: no decision, the decisions
    made so far (None for a step without approvals)."""
    gate = (state.pause or {}).get("approvals")
    if not isinstance(gate, dict):
        return None
    return {"decision": None, "approvals": list(gate["decisions"])}


def display(gate: dict[str, Any]) -> dict[str, Any]:
    """The gate as the run document and `pending` show it."""
    return {"required": gate["required"], "approvers": list(gate["approvers"]),
            "decisions": [dict(d) for d in gate["decisions"]]}
