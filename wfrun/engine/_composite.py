"""State transitions of composite steps (foreach iterations, child runs), applied to a run.

A composite step is one with `foreach:` or `workflow:`. Its *nodes* are the step itself (a
plain `workflow:` step) or its iterations (`StepState.iterations`). A node waiting on a child
run has a pause `{"kind": "child"}`; a foreach step whose iterations are paused has a pause
`{"kind": "foreach"}`. Neither has a `due_at`: the timers live in the iterations (see
`StepState.due_times`) or in the child run itself. Pure functions, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from wfrun import _schema
from wfrun.durations import format_duration, parse_iso, to_iso
from wfrun.errors import ConflictError
from wfrun.manifest import DEFAULT_TIMEOUT, StepSpec, Workflow
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSE_RERUN,
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

from ._address import label
from ._apply import Outcome, _apply_rerun, _check_outcome, _complete, cancel_run, fail_run
from ._ask import _answer, answer_timeout, apply_ask, expected_schema, is_ask
from ._schedule import Events, end_open_steps, event, run_output

PAUSE_CHILD = "child"
PAUSE_FOREACH = "foreach"
COMPOSITE_PAUSES = frozenset({PAUSE_CHILD, PAUSE_FOREACH})


def is_composite(spec: StepSpec | None) -> bool:
    """True for a step that runs a child workflow or iterates (`workflow:` or `foreach:`)."""
    return spec is not None and (spec.kind == "workflow" or spec.foreach is not None)


def node(run: Run, step_id: str, index: int | None) -> StepState:
    """The state of a step, or of one of its iterations."""
    state = run.steps[step_id]
    if index is None:
        return state
    if state.iterations is None or not 0 <= index < len(state.iterations):
        count = len(state.iterations or [])
        raise IndexError(f"step '{step_id}' has {count} iteration{'s' if count != 1 else ''}")
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
            it.trigger = {"reason": "recovered"}
            events.append(event(now, "recovered", name, runs=it.runs))
        elif it.status != PENDING:
            continue
        it.status = RUNNING
        it.runs += 1
        it.started_at = it.started_at or to_iso(now)
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
                 "message": f"iteration {index}: {error.get('message', 'failed')}"}
        _fail_step(run, state, error, now, events)
    elif statuses <= SETTLED:
        state.output = [it.output for it in its]
        state.error = None
        _complete(state, step_id, now, events, iterations=len(its))
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
    return "null" if value is None else f"a {type(value).__name__}"


# -- what an iteration's code or a child run produced -----------------------------------------


def apply_iteration_outcome(run: Run, workflow: Workflow, step_id: str, index: int,
                            outcome: Outcome, now: datetime, events: Events) -> None:
    """Record one execution of a foreach iteration's code (like `apply_outcome` for a step)."""
    spec = workflow.steps[step_id]
    it = node(run, step_id, index)
    name = label(step_id, index)
    for record in outcome.logs:
        events.append(event(now, "log", name, **record))
    if it.status == CANCELLED and run.status == CANCELLED and outcome.error is None:
        it.output = outcome.output  # cancelled while it ran: it finishes, nothing more runs
        it.status = COMPLETED
        events.append(event(now, "step_completed", name, note="run was cancelled meanwhile"))
        return
    if it.status != RUNNING:
        return
    it.trigger = None
    if outcome.ask is not None:
        first = len(events)
        asked = apply_ask(run, spec, it, outcome, now, events)
        for ev in events[first:]:
            ev["step"] = name
        if asked:
            return
    _check_outcome(spec, outcome)
    if outcome.error is not None:
        outcome.error["step"] = name
        it.failures += 1
        it.error = outcome.error
        retry = spec.retry
        if run.status != CANCELLED and retry and it.failures < retry.max_attempts:
            due = now + retry.delay_after(it.failures)
            it.status = WAITING
            it.pause = {"kind": "retry", "since": to_iso(now), "due_at": to_iso(due)}
            events.append(event(now, "retried", name, error=outcome.error,
                                traceback=outcome.traceback, attempt=it.failures,
                                max_attempts=retry.max_attempts, due_at=it.pause["due_at"]))
            return
        it.status = FAILED
        it.finished_at = to_iso(now)
        events.append(event(now, "step_failed", name, error=outcome.error,
                            traceback=outcome.traceback))
        return
    it.failures = 0
    it.error = None
    it.output = outcome.output
    if outcome.action_set:
        it.action = outcome.action
    pause = None if outcome.exit_requested or run.status == CANCELLED else outcome.pause
    if pause is None:
        _complete(it, name, now, events)
    elif pause.kind == "suspend":
        timeout = next(t for t in (pause.timeout, spec.timeout, DEFAULT_TIMEOUT) if t is not None)
        it.status = SUSPENDED
        it.suspend_data = pause.data
        it.pause = {
            "kind": PAUSE_SUSPEND, "since": to_iso(now), "due_at": to_iso(now + timeout),
            "on_timeout": pause.on_timeout or spec.on_timeout or "cancel", "nonce": pause.nonce,
        }
        events.append(event(now, "suspended", name, deadline=it.pause["due_at"]))
    elif pause.kind == "rerun":
        _apply_rerun(it, name, pause, now, events)
    else:
        assert pause.until is not None
        if pause.until <= now:
            _complete(it, name, now, events)
        else:
            it.status = WAITING
            it.pause = {"kind": PAUSE_SLEEP, "since": to_iso(now), "due_at": to_iso(pause.until)}
            events.append(event(now, "sleeping", name, due_at=it.pause["due_at"]))
    if outcome.exit_requested and not run.finished:
        end_open_steps(run, now, SKIPPED)
        run.status = COMPLETED
        run.output = run_output(run, workflow)
        events.append(event(now, "completed", name, reason=outcome.exit_reason, exit=True))


@dataclass
class ChildResult:
    """Where a child run stands, as its parent records it (or why it could not start)."""

    child_id: str
    status: str | None = None
    output: Any = None
    error: dict[str, str] | None = None
    problem: str | None = None


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
                f"{err.get('message', '')}")}
        it.status = FAILED
        it.pause = None
        it.finished_at = to_iso(now)
        events.append(event(now, "step_failed", name, error=it.error, child=result.child_id))
        if index is None:
            fail_run(run, it.error, now, events)
    elif status == COMPLETED:
        it.output = result.output
        _complete(it, name, now, events, child=result.child_id)
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


# -- timers and resumes of iterations -----------------------------------------------------------


def fire_iterations(run: Run, workflow: Workflow, now: datetime,
                    events: Events) -> list[tuple[str, str]]:
    """Fire every due timer of paused foreach iterations; (label, reason) pairs fired."""
    fired: list[tuple[str, str]] = []
    for sid, state in run.steps.items():
        if run.finished or state.iterations is None or state.status not in (SUSPENDED, WAITING):
            continue
        here = 0
        for index, it in enumerate(state.iterations):
            pause = it.pause
            if run.finished or not pause or not pause.get("due_at") \
                    or parse_iso(pause["due_at"]) > now:
                continue
            name = label(sid, index)
            kind = pause["kind"]
            here += 1
            if kind == PAUSE_SUSPEND:
                _time_out(run, sid, it, name, now, events)
                fired.append((name, "timeout"))
                continue
            events.append(event(now, "timer_fired", name, kind=kind, due_at=pause["due_at"]))
            if kind == PAUSE_SLEEP:
                _complete(it, name, now, events)
            else:
                it.status = PENDING
                it.pause = None
                it.trigger = {"reason": kind, "callback_request": None}
            fired.append((name, kind))
        if here and sid in workflow.steps:
            settle(run, workflow, sid, now, events, executing=False)
    return fired


def _time_out(run: Run, sid: str, it: StepState, name: str, now: datetime,
              events: Events) -> None:
    pause = it.pause or {}
    on_timeout = pause.get("on_timeout", "cancel")
    waited = format_duration(now - parse_iso(pause["since"]))
    events.append(event(now, "timed_out", name, on_timeout=on_timeout, deadline=pause["due_at"]))
    if on_timeout == "resume" and answer_timeout(it):
        pass  # an ask answered with None: the iteration executes again
    elif on_timeout == "resume":
        it.resume_data = None
        _complete(it, name, now, events, note="timed out; resumed with no data")
    elif on_timeout == "fail":
        it.status = FAILED
        it.pause = None
        it.finished_at = to_iso(now)
        it.error = {"step": name, "type": "TimeoutError", "message": (
            f"step '{name}' was not resumed before its deadline {pause['due_at']} ({waited})")}
    else:
        cancel_run(run, now, f"step '{name}' timed out after {waited}", events)


def resumable_iterations(state: StepState) -> list[int]:
    """Indexes of iterations (without a child run) that can take data now."""
    return [
        i for i, it in enumerate(state.iterations or [])
        if it.child is None and (it.status == SUSPENDED or (
            it.status == WAITING and (it.pause or {}).get("kind") == PAUSE_RERUN))
    ]


def apply_iteration_resume(run: Run, workflow: Workflow, step_id: str, index: int, data: Any,
                           action: str | None, request: dict[str, Any], now: datetime,
                           events: Events, asked: str | None = None) -> None:
    """Hand data to a suspended (or rerun-pending) iteration, then settle its step.

    An iteration at an unanswered `ask()` records the answer and executes again; `asked` is
    the nonce of the ask the caller saw (None: it saw none)."""
    it = node(run, step_id, index)
    name = label(step_id, index)
    kind = (it.pause or {}).get("kind")
    if it.status == SUSPENDED and is_ask(it):
        pause = it.pause or {}
        number = int(pause["ask"])
        if pause["nonce"] != asked:
            raise ConflictError(
                f"step '{name}' of run {run.run_id} now waits for the answer to its ask "
                f"#{number}, asked at {pause['since']} after this resume began; check it with "
                "'show' and resume again")
        _schema.validate(expected_schema(it, workflow.steps[step_id]), data,
                         f"answer to ask #{number} of step '{name}'")
        _answer(it, number, data, {"reason": "resume", "callback_request": request})
        if action is not None:
            it.action = action
        it.resumed_at = to_iso(now)
        events.append(event(now, "resumed", name, action=action, source=request["source"],
                            ask=number))
    elif it.status == SUSPENDED and kind == PAUSE_SUSPEND:
        it.resume_data = data
        if action is not None:
            it.action = action
        it.resumed_at = to_iso(now)
        _complete(it, name, now, [])
        events.append(event(now, "resumed", name, action=action, source=request["source"]))
    elif it.status == WAITING and kind == PAUSE_RERUN:
        it.status = PENDING
        it.pause = None
        it.resumed_at = to_iso(now)
        if action is not None:
            it.action = action
        it.trigger = {"reason": "resume", "callback_request": request}
        events.append(event(now, "resumed", name, action=action, source=request["source"],
                            rerun=True))
    elif it.resumed_at:
        raise ConflictError(f"step '{name}' of run {run.run_id} was already resumed at "
                            f"{it.resumed_at}; its data is kept")
    else:
        raise ConflictError(f"step '{name}' of run {run.run_id} is {it.status}, not suspended; "
                            "nothing to resume")
    settle(run, workflow, step_id, now, events, executing=False)


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
