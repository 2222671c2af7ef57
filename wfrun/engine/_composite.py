"""State transitions of composite steps (foreach iterations, child runs), applied to a run.

A composite step is one with `foreach:` or `workflow:`. Its *nodes* are the step itself (a
plain `workflow:` step) or its iterations (`StepState.iterations`). A node waiting on a child
run has a pause `{"kind": "child"}`; a foreach step whose iterations are paused has a pause
`{"kind": "foreach"}`. Neither has a `due_at`: the timers live in the iterations (see
`StepState.due_times`) or in the child run itself. Pure functions, no I/O.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import StepSpec, Workflow
from wfrun.durations import to_iso
from wfrun.ids import random_token
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PENDING,
    RUNNING,
    SETTLED,
    SKIPPED,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)

from ._ask import is_ask, record_answer
from ._history import Events, complete, event
from ._schedule import complete_foreach
from ._timers import accepted_request, fire_node
from ._transitions import (
    Outcome,
    cancel_run,
    fail_run,
    record_outcome,
    resume_node,
)

PAUSE_CHILD = "child"
PAUSE_FOREACH = "foreach"
COMPOSITE_PAUSES = frozenset({PAUSE_CHILD, PAUSE_FOREACH})


def is_composite(spec: StepSpec | None) -> bool:
    """True for a step that runs a child workflow or iterates (`workflow:` or `foreach:`)."""
    return spec is not None and (spec.kind == "workflow" or spec.foreach is not None)


def has_composites(run: Run) -> bool:
    """True if some step of the run iterates or has a child run."""
    return any(s.child or s.iterations is not None for s in run.steps.values())


def label(step: str, index: int | None) -> str:
    """How one step or iteration is written in an address and in history: `step` or `step[2]`."""
    return step if index is None else f"{step}[{index}]"


def node(run: Run, step_id: str, index: int | None) -> StepState:
    """The state of a step, or of one of its iterations."""
    state = run.steps[step_id]
    if index is None:
        return state
    if state.iterations is None or not 0 <= index < len(state.iterations):
        count = len(state.iterations or [])
        which = (f": {step_id}[0]" if count == 1 else f": {step_id}[0] to {step_id}[{count - 1}]"
                 if count else " (it is not a foreach step, or none has started)")
        raise IndexError(f"step '{step_id}' has {count} iteration{'s' if count != 1 else ''}"
                         + which)
    return state.iterations[index]


# -- starting and picking iterations ------------------------------------------------------------


def begin_next(run: Run, workflow: Workflow, step_id: str, now: datetime,
               events: Events) -> int | None:
    """Mark the next iteration of a running foreach step running and return its index.

    On the step's first execution its iterations are created from the `foreach:` step's
    output (which must be a list). With nothing left to execute, the step is settled
    (completed, failed, suspended or waiting) and None is returned.
    """
    state = run.steps[step_id]
    spec = workflow.steps[step_id]
    if state.status != RUNNING:
        return None
    state.trigger = None  # consumed: the step is executing
    if state.iterations is None:
        assert spec.foreach is not None
        items = run.steps[spec.foreach].output
        if not isinstance(items, list):
            error = {"step": step_id, "type": "TypeError", "message": (
                f"step '{step_id}' has foreach: {spec.foreach}, whose output is "
                f"{_kind(items)}, not a list; make step '{spec.foreach}' return a list")}
            _fail_step(run, state, error, now, events)
            return None
        state.iterations = [StepState() for _ in items]
        events.append(event(now, "foreach_started", step_id, iterations=len(items)))
    failed = any(it.status == FAILED for it in state.iterations)  # fail fast: none after it
    for index, it in enumerate([] if failed else state.iterations):
        name = label(step_id, index)
        if it.status == RUNNING:  # left running by a process that died: execute it again
            it.trigger = {"reason": "recovered", **accepted_request(run, name, it)}
            events.append(event(now, "recovered", name, runs=it.runs))
        elif it.status != PENDING:
            continue
        it.status = RUNNING
        it.runs += 1
        it.started_at = it.started_at or to_iso(now)
        if spec.kind == "code" and it.exec_nonce is None:  # (a recovered one keeps its links)
            it.exec_nonce = random_token()  # the links it hands out: resumes may come early
        events.append(event(now, "step_started", name, runs=it.runs,
                            reason=(it.trigger or {}).get("reason")))
        return index
    settle(run, workflow, step_id, now, events, executing=True)
    return None


def items_of(run: Run, spec: StepSpec) -> list[Any]:
    """The elements a foreach step iterates over (its iterations were made from them)."""
    assert spec.foreach is not None
    items = run.steps[spec.foreach].output
    return items if isinstance(items, list) else []


def settle(run: Run, workflow: Workflow, step_id: str, now: datetime, events: Events,
           *, executing: bool) -> None:
    """Bring a foreach step's status in line with its iterations.

    Any failed iteration fails the step (and the run); all completed: the step completes with
    the list of their outputs; an iteration ready to execute makes the step run again (or keep
    running, when `executing`); otherwise it is suspended or waiting like its iterations.
    """
    state = run.steps[step_id]
    its = state.iterations or []
    if state.status in (COMPLETED, FAILED, CANCELLED, SKIPPED) or run.finished:
        return
    if state.status == RUNNING and not executing:
        return  # another process is executing it: it settles the step itself
    failed = next(((i, it) for i, it in enumerate(its) if it.status == FAILED), None)
    statuses = {it.status for it in its}
    if failed is not None:
        index, it = failed
        error = dict(it.error or {})
        error = {"step": step_id, "type": error.get("type", "Error"),
                 "message": f"iteration {index}: {error.get('message', 'failed')}",
                 **{k: error[k] for k in ("traceback",) if k in error}}  # where it raised
        _fail_step(run, state, error, now, events)
    elif statuses <= SETTLED:
        complete_foreach(state, step_id, now, events)
    elif statuses & {PENDING, RUNNING}:
        state.pause = None
        if not executing:
            state.status = PENDING
            reasons = [(it.trigger or {}).get("reason") for it in its if it.status == PENDING]
            state.trigger = {"reason": next((r for r in reasons if r), "foreach")}
    else:
        state.status = SUSPENDED if SUSPENDED in statuses else WAITING
        since = (state.pause or {}).get("since") or to_iso(now)
        state.pause = {"kind": PAUSE_FOREACH, "since": since}


def _fail_step(run: Run, state: StepState, error: dict[str, str], now: datetime,
               events: Events) -> None:
    state.status = FAILED
    state.error = error
    state.pause = None
    state.finished_at = to_iso(now)
    events.append(event(now, "step_failed", error["step"], error=error))
    if not run.finished:
        fail_run(run, error, now, events)


def _kind(value: Any) -> str:
    """What a step's output is, for messages: "null", "a dict", "an int"..."""
    if value is None:
        return "null"
    name = type(value).__name__
    return f"{'an' if name[:1] in 'aeiou' else 'a'} {name}"


# -- what an iteration's code or a child run produced -----------------------------------------


def apply_iteration_outcome(run: Run, workflow: Workflow, step_id: str, index: int,
                            outcome: Outcome, now: datetime, events: Events) -> None:
    """Record one execution of a foreach iteration's code, as `apply_outcome` does a step's
    (the caller settles the step)."""
    record_outcome(run, workflow, step_id, node(run, step_id, index), label(step_id, index),
                   outcome, now, events)


def fire_iterations(run: Run, workflow: Workflow, now: datetime,
                    events: Events) -> list[tuple[str, str]]:
    """Fire every due timer of paused foreach iterations, then settle their steps; (label,
    reason) pairs fired."""
    fired: list[tuple[str, str]] = []
    for sid, state in run.steps.items():
        if run.finished or state.iterations is None or state.status not in (SUSPENDED, WAITING):
            continue
        here = 0
        for index, it in enumerate(state.iterations):
            if run.finished:
                continue
            name = label(sid, index)
            reason = fire_node(run, workflow, sid, it, name, now, events)
            if reason is not None:
                here += 1
                fired.append((name, reason))
        if here and sid in workflow.steps:
            settle(run, workflow, sid, now, events, executing=False)
    return fired


def apply_iteration_resume(run: Run, workflow: Workflow, step_id: str, index: int, data: Any,
                           action: str | None, request: dict[str, Any], now: datetime,
                           events: Events, asked: str | None = None) -> None:
    """Hand data to a suspended (or rerun-pending) iteration, then settle its step.

    An iteration at an unanswered `ask()` records the answer and executes again; `asked` is
    the nonce of the ask the caller saw (None: it saw none)."""
    it = node(run, step_id, index)
    name = label(step_id, index)
    spec = workflow.steps[step_id]
    if it.status == SUSPENDED and is_ask(it):
        record_answer(it, name, run.run_id, spec, data, action, request, now, events, asked)
    else:
        resume_node(run.run_id, spec, it, name, data, action, request, now, events)
    settle(run, workflow, step_id, now, events, executing=False)


class ChildResult:
    """Where a child run stands, as its parent records it (or why it could not start)."""

    __slots__ = ("child_id", "error", "output", "problem", "status")

    def __init__(self, child_id: str, status: str | None = None, output: Any = None,
                 error: dict[str, str] | None = None, problem: str | None = None) -> None:
        self.child_id = child_id
        self.status = status
        self.output = output
        self.error = error
        self.problem = problem


def apply_child_result(run: Run, step_id: str, index: int | None, result: ChildResult,
                       now: datetime, events: Events, *, executing: bool) -> bool:
    """Record a child run's status on the node that owns it; True if the parent now agrees.

    `executing`: this process is executing the node (it is running and ours). Otherwise a
    running node is being executed elsewhere and is left alone (False: tell it again later).
    A finished parent, or a node that no longer owns this child, counts as agreeing.
    """
    try:
        it = node(run, step_id, index)
    except (KeyError, IndexError):
        return True
    if run.finished:
        it.child = it.child or result.child_id  # so that closing the run cancels the child
        return True
    if it.child not in (None, result.child_id) or it.status in (COMPLETED, FAILED, CANCELLED,
                                                                 SKIPPED):
        return True
    if it.status == RUNNING and not executing:
        return False
    name = label(step_id, index)
    it.child = result.child_id
    if executing:
        it.trigger = None
    status = result.status
    if result.problem is not None or status == FAILED:
        if result.problem is not None:
            it.error = {"step": name, "type": "ChildWorkflowError", "message": result.problem}
        else:
            err = result.error or {}
            it.error = {"step": name, "type": err.get("type", "Error"), "message": (
                f"child run {result.child_id} failed in step '{err.get('step')}': "
                f"{err.get('message', '')}"), **{k: err[k] for k in ("traceback",) if k in err}}
        it.status = FAILED
        it.pause = None
        it.finished_at = to_iso(now)
        events.append(event(now, "step_failed", name, error=it.error, child=result.child_id))
        if index is None:
            fail_run(run, it.error, now, events)
    elif status == COMPLETED:
        it.output = result.output
        complete(it, name, now, events, child=result.child_id)
    elif status == CANCELLED:
        it.status = CANCELLED
        it.pause = None
        cancel_run(run, now, f"child run {result.child_id} of step '{name}' was cancelled",
                   events)
    else:  # suspended, waiting, or being executed by another process
        paused = SUSPENDED if status == SUSPENDED else WAITING
        if it.status != paused or not it.pause:
            events.append(event(now, "child_" + (status or "running"), name,
                                child=result.child_id))
        since = (it.pause or {}).get("since") or to_iso(now)
        it.status = paused
        it.pause = {"kind": PAUSE_CHILD, "since": since}
        if it.runs == 0:
            it.runs = 1
    return True


def node_of(run: Run, name: str) -> StepState | None:
    """The state a link's step names: a step (`review`) or an iteration (`review[1]`)."""
    if name in run.steps:
        return run.steps[name]
    base, _, rest = name.partition("[")
    if not rest.endswith("]") or not rest[:-1].isdigit() or base not in run.steps:
        return None
    try:
        return node(run, base, int(rest[:-1]))
    except IndexError:
        return None


def step_of(name: str) -> str:
    """The manifest step of a link's step: `review` for `review[1]`."""
    return name.partition("[")[0]
