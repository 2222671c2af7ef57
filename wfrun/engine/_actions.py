"""Actions are checked (SPEC §2): a resume's action, and the action a step routes to, must be
one of the step's known actions (`Workflow.actions_for`)."""

from __future__ import annotations

from wfrun._specs import StepSpec, Workflow
from wfrun.errors import UsageError
from wfrun.model import SUSPENDED, StepState

GIVEN = "--action NAME, or &action=NAME on a resume URL"  # how a resume names its action

def either(actions: list[str] | tuple[str, ...]) -> str:
    """`a`, `a or b`, `a, b or c`: the actions as a sentence names them."""
    if len(actions) <= 1:
        return "".join(actions)
    return f"{', '.join(actions[:-1])} or {actions[-1]}"


def check_resume_action(workflow: Workflow, step_id: str, action: str | None, run_id: str,
                        state: StepState | None = None) -> None:
    """Refuse (UsageError, exit 2 / HTTP 422) a resume of `step_id` (a step, or a foreach
    iteration `step[i]`) whose action is not among the step's known actions, or that gives no
    action when every step depending on it runs only for one (`when:`), so nothing would run.

    `state` (the step's or iteration's state, if the caller has it) tells whether the step
    still sets its action itself: one that routed before it suspended, or that executes again
    on this resume (a rerun, an ask, or still executing), may be resumed without an action. A
    step without known actions takes none. A step the workflow no longer has is not checked
    here (the caller reports it)."""
    base = step_id.split("[", 1)[0]
    spec = workflow.steps.get(base)
    if spec is None:
        return
    known = workflow.actions_for(base)
    if action is not None:
        if not known:
            raise UsageError(
                f"step '{step_id}' of run {run_id} takes no action (no step's when: names one "
                f"for it and it has no actions:), not {action!r}; resume it without one "
                f"({GIVEN}), or list the action in the step's actions: in the manifest"
            )
        if action not in known:
            raise UsageError(
                f"step '{step_id}' of run {run_id} takes the action {either(known)}, not "
                f"{action!r}; give one of those ({GIVEN})"
            )
        return
    if known and base == step_id and needs_an_action(workflow, spec, state):
        raise UsageError(
            f"step '{step_id}' of run {run_id} needs an action: every step after it runs only "
            f"for one (when:), so without one nothing would run; give one of "
            f"{', '.join(known)} ({GIVEN})"
        )


def needs_an_action(workflow: Workflow, spec: StepSpec, state: StepState | None) -> bool:
    """True if a resume without an action would leave the step with none, and every step
    that needs it waits for one with `when:`."""
    dependants = workflow.dependants(spec.id)
    if not dependants or not all(spec.id in workflow.steps[d].when for d in dependants):
        return False
    if spec.kind == "wait":
        return state is None or state.action is None
    # a code step keeps the action it routed to before suspending; one that executes again
    # (rerun, ask, still executing) may route then: only a plain suspension is known to need one
    return (state is not None and state.status == SUSPENDED and state.action is None
            and "ask" not in (state.pause or {}))


def route_problem(spec: StepSpec, action: str | None) -> str | None:
    """Why `ctx.flow.route(action)` in `spec`'s code must fail the step (an action that is
    not among the step's known actions: SPEC §2, "an action nobody matches"), or None if it
    may. A step with no known actions takes none, as a resume's `--action` is refused."""
    known = spec.known_actions
    if action is None or action in known:
        return None
    if not known:
        return (f"step '{spec.id}' routed to the action {action!r}, which no step matches: it "
                "has no known actions (add the action to the step's actions:, or a when: on a "
                "step that follows it)")
    return (f"step '{spec.id}' routed to the action {action!r}, which no step matches; its "
            f"known actions are {either(known)} (fix the name, or add it to the step's "
            "actions: and a when: that follows it)")
