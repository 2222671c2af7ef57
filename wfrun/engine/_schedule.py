"""Which step runs next: needs, `when`, skipping and joining, and the run's resulting status."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import StepSpec, Workflow
from wfrun.durations import to_iso
from wfrun.errors import CodeChangedError
from wfrun.ids import random_token
from wfrun.manifest import DEFAULT_TIMEOUT
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    FINISHED,
    PAUSE_SLEEP,
    PAUSE_SUSPEND,
    PENDING,
    RUNNING,
    SETTLED,
    SKIPPED,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)

from ._history import Events, complete, event


def ensure_steps(run: Run, workflow: Workflow) -> None:
    """Give every step of the (possibly changed) workflow a state, in manifest order."""
    if list(run.steps) == list(workflow.steps):
        return
    ordered = {sid: run.steps.get(sid) or StepState() for sid in workflow.steps}
    for sid, state in run.steps.items():  # steps the manifest dropped keep their record
        ordered.setdefault(sid, state)
    run.steps = ordered


def step_gone(run: Run, step: str, workflow: Workflow, remedy: str) -> CodeChangedError:
    """The error for a step of `run` that its workflow's current code no longer has; `remedy`
    says what to do ("restore it to resume this run")."""
    return CodeChangedError(f"step '{step}' of run {run.run_id} no longer exists in workflow "
                            f"'{run.workflow}' ({workflow.path}); {remedy}")


def resume_refusal(run: Run, step: str, workflow: Workflow | None) -> CodeChangedError | None:
    """Why a resume of `step` (a manifest step: `review` for `review[1]`) of `run` is refused
    when the workflow's current code no longer has it, else None (None too for no workflow:
    it could not be loaded). `resume` raises it; the run document, `pending` and a link's
    description say it in place of how to resume."""
    if workflow is None or step in workflow.steps:
        return None
    # (no manifest path: the sentence is also a link's 409 answer, to whoever holds the link)
    return CodeChangedError(f"step '{step}' of run {run.run_id} no longer exists in workflow "
                            f"'{run.workflow}'; restore it to resume this run, or cancel the run")


def _when_holds(run: Run, spec: StepSpec) -> bool:
    for target, actions in spec.when.items():
        state = run.steps[target]
        if state.status != COMPLETED or state.action not in actions:
            return False
    return True


def _ready(run: Run, spec: StepSpec) -> bool | None:
    """True: run it; False: skip it; None: not yet decidable."""
    state = run.steps[spec.id]
    if state.trigger is not None:
        return True
    needs = [run.steps[n] for n in spec.needs]
    if any(n.status not in SETTLED for n in needs):
        return None
    if needs and all(n.status == SKIPPED for n in needs):
        return False
    return _when_holds(run, spec)


def schedule(
    run: Run, workflow: Workflow, now: datetime, events: Events, *, execute: bool
) -> str | None:
    """Settle what needs no code (skips, waits, sleeps) and find the next code step to run.

    With `execute`, that step is marked running (this process holds the execution claim);
    either way the run's status is brought up to date. Returns the step's id or None.
    """
    ensure_steps(run, workflow)
    progress = True
    while progress:
        progress = False
        for spec in workflow.steps.values():
            state = run.steps[spec.id]
            if state.status == RUNNING:
                run.status = RUNNING
                return spec.id
            if state.status != PENDING:
                continue
            ready = _ready(run, spec)
            if ready is None:
                continue
            progress = True
            if ready is False:
                state.status = SKIPPED
                state.finished_at = to_iso(now)
                events.append(event(now, "step_skipped", spec.id))
            elif spec.kind == "wait":
                _start_wait(state, spec, now, events)
            elif spec.kind == "sleep":
                _start_sleep(state, spec, now, events)
            else:
                if execute:  # (a plain code step hands out links; foreach iterations and
                    # child runs hand out their own)
                    mark_running(run, spec.id, now, events,
                                 links=spec.kind == "code" and spec.foreach is None)
                else:
                    _set_running(run, now)
                return spec.id
    update_status(run, workflow, now, events)
    return None


def _set_running(run: Run, now: datetime) -> None:
    if run.status != RUNNING:
        run.status = RUNNING
        run.running_since = to_iso(now)


def mark_running(run: Run, step_id: str, now: datetime, events: Events,
                 links: bool = True) -> None:
    """Record that this process starts executing the step now (`links`: its code may hand
    out links, so early resumes are kept for it)."""
    _set_running(run, now)
    state = run.steps[step_id]
    state.status = RUNNING
    state.runs += 1
    state.started_at = state.started_at or to_iso(now)
    if links and state.exec_nonce is None:  # a recovered execution keeps its links
        state.exec_nonce = random_token()
    reason = (state.trigger or {}).get("reason")
    events.append(event(now, "step_started", step_id, runs=state.runs, reason=reason))


def _start_wait(state: StepState, spec: StepSpec, now: datetime, events: Events) -> None:
    timeout = DEFAULT_TIMEOUT if spec.timeout is None else spec.timeout
    state.status = SUSPENDED
    state.runs += 1
    state.started_at = state.started_at or to_iso(now)
    state.pause = {
        "kind": PAUSE_SUSPEND, "since": to_iso(now), "due_at": to_iso(now + timeout),
        "on_timeout": spec.on_timeout or "cancel", "nonce": random_token(),
        **({"label": spec.label} if spec.label else {}),
    }
    if spec.approvals is not None:  # N of M approvers decide (`_approvals.py`)
        from ._approvals import gate_of

        state.pause.update(gate_of(spec))
    events.append(event(now, "suspended", spec.id, deadline=state.pause["due_at"],
                        **({"label": spec.label} if spec.label else {})))


def _start_sleep(state: StepState, spec: StepSpec, now: datetime, events: Events) -> None:
    until = spec.sleep_until or now + (spec.sleep or (now - now))
    state.runs += 1
    state.started_at = state.started_at or to_iso(now)
    if until <= now:
        state.status = COMPLETED
        state.finished_at = to_iso(now)
        events.append(event(now, "step_completed", spec.id, note="sleep time already passed"))
        return
    state.status = WAITING
    state.pause = {"kind": PAUSE_SLEEP, "since": to_iso(now), "due_at": to_iso(until)}
    events.append(event(now, "sleeping", spec.id, due_at=state.pause["due_at"]))


def run_output(run: Run, workflow: Workflow) -> Any:
    """The run's output: the `output:` step's, else the last completed step's in order."""
    if workflow.output and workflow.output in run.steps:
        return run.steps[workflow.output].output
    for sid in reversed(list(workflow.steps)):
        if run.steps[sid].status == COMPLETED:
            return run.steps[sid].output
    return None


def update_status(run: Run, workflow: Workflow, now: datetime, events: Events) -> None:
    """Derive the run's status from its steps when nothing is ready to execute."""
    if run.status in FINISHED:
        return
    statuses = {s.status for s in run.steps.values()}
    if SUSPENDED in statuses:
        run.status = SUSPENDED
    elif WAITING in statuses:
        run.status = WAITING
    else:
        run.status = COMPLETED
        run.output = run_output(run, workflow)
        for state in run.steps.values():
            if state.status == PENDING:  # unreachable: its needs never settle
                state.status = SKIPPED
        events.append(event(now, "completed"))
    run.running_since = None


def end_open_steps(run: Run, now: datetime, status: str = CANCELLED) -> None:
    """Drop every timer and close every step that has not finished (cancel, fail, exit)."""
    for state in run.steps.values():
        for node in [state, *(state.iterations or ())]:  # foreach iterations close with it
            close_node(node, now, status)
    run.running_since = None


def complete_foreach(state: StepState, step_id: str, now: datetime, events: Events,
                     **note: Any) -> None:
    """Complete a foreach step: its output is the list of its iterations' outputs, in order
    (null for an iteration that never returned)."""
    its = state.iterations or []
    state.output = [it.output for it in its]
    state.error = None
    complete(state, step_id, now, events, iterations=len(its), **note)


def close_node(node: StepState, now: datetime, status: str) -> None:
    """Close a step or iteration that has not finished with `status`; its timer is dropped.
    The links an execution under way holds are kept as ended (a 409 for them, not a 404)."""
    if node.status in (PENDING, SUSPENDED, WAITING, RUNNING):
        node.status = status
        node.pause = None
        node.trigger = None
        node.keep_nonce(node.exec_nonce)
        node.exec_nonce = None
        node.finished_at = node.finished_at or to_iso(now)
