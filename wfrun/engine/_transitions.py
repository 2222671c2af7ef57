"""State transitions, applied to a run (pure, no I/O): an execution's outcome, a pause, a
resume, a cancel, a rewind for retry (timers, deadlines and recovery: `_timers.py`).

One state machine serves a step and a foreach iteration (a *node*, named `step` or `step[2]`
in history): `record_outcome`, `resume_node` and `_timers.fire_node` change one node; the
functions for steps (`apply_outcome`, `apply_resume`, `_timers.fire_due`) add what a step's
result does to its run, and those for iterations (in `_composite.py`) settle the foreach step
instead."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun import _schema
from wfrun._detach import stored_or_problem
from wfrun._specs import StepSpec, Workflow
from wfrun.durations import to_iso
from wfrun.errors import ConflictError, WfrunError
from wfrun.flow import PauseRequest
from wfrun.manifest import DEFAULT_TIMEOUT
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSE_EVENT,
    PAUSE_RERUN,
    PAUSE_RETRY,
    PAUSE_SLEEP,
    PAUSE_SUSPEND,
    PENDING,
    RUNNING,
    SKIPPED,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)

from ._actions import route_problem
from ._ask import apply_ask, labelled
from ._history import Events, complete, event
from ._schedule import close_node, complete_foreach, end_open_steps, run_output


class Outcome:
    """What one execution of a step's code produced (a plain class: see wfrun._specs)."""

    __slots__ = ("action", "action_set", "ask", "error", "exit_reason", "exit_requested", "logs",
                 "output", "output_lost", "pause", "traceback")

    def __init__(self) -> None:
        self.output: Any = None
        self.pause: PauseRequest | None = None
        self.action: str | None = None
        self.action_set = False
        self.exit_requested = False
        self.exit_reason: str | None = None
        self.error: dict[str, str] | None = None
        self.traceback: str | None = None
        self.logs: list[dict[str, Any]] = []
        self.ask: Any = None  # the unanswered AskRequest the execution stopped at
        # why what the execution printed and logged stopped being kept (the log write failed)
        self.output_lost: str | None = None


def step_error(step: str, kind: str, message: str) -> dict[str, str]:
    """A step's `error` as the run document shows it."""
    return {"step": step, "type": kind, "message": message}


def _check_outcome(spec: StepSpec, outcome: Outcome) -> None:
    """Turn a non-JSON output, bad suspend data or a schema violation into a step error; what
    is kept becomes a detached copy (step code may still hold and change the original)."""
    if outcome.error is not None:
        return
    if outcome.action_set and (problem := route_problem(spec, outcome.action)):
        outcome.error = step_error(spec.id, "FlowError", problem)  # SPEC §2: route() checked
        return
    checks = [("output", outcome.output, spec.output_schema)]
    if outcome.pause and outcome.pause.kind == "suspend":
        checks.append(("suspend data", outcome.pause.data, spec.suspend_schema))
    if outcome.pause and outcome.pause.kind == "rerun":
        checks.append(("rerun context", outcome.pause.context, None))
    copies = []
    for what, value, schema in checks:
        copy, problem = stored_or_problem(value)
        copies.append(copy)
        if problem:
            outcome.error = step_error(
                spec.id, "TypeError",
                f"step '{spec.id}' produced {what} that is not JSON-serialisable "
                f"(a {type(value).__name__}): {problem}",
            )
            return
        try:
            _schema.validate(schema, copy, f"{what} of step '{spec.id}'")
        except WfrunError as exc:
            outcome.error = step_error(spec.id, type(exc).__name__, exc.message)
            return
    outcome.output = copies[0]
    if outcome.pause and outcome.pause.kind == "suspend":
        outcome.pause.data = copies[1]
    elif outcome.pause and outcome.pause.kind == "rerun":
        outcome.pause.context = copies[1]


def apply_outcome(
    run: Run, workflow: Workflow, step_id: str, outcome: Outcome, now: datetime, events: Events
) -> None:
    """Record a finished execution of a step and what it asked for; a failure fails the run."""
    state = run.steps[step_id]
    if record_outcome(run, workflow, step_id, state, step_id, outcome, now, events) \
            and run.status != CANCELLED:
        fail_run(run, outcome.error or {}, now, events)


def record_outcome(run: Run, workflow: Workflow, step_id: str, state: StepState, name: str,
                   outcome: Outcome, now: datetime, events: Events) -> bool:
    """Record a finished execution of a node (step `step_id`, or its iteration `name`) and
    what it asked for: an ask, a pause, an exit, or an error (retried if the step's `retry:`
    allows). True if it failed for good (the caller fails the run, or settles the step)."""
    spec = workflow.steps[step_id]
    for record in outcome.logs:
        events.append(event(now, "log", name, **record))
    if state.status not in (RUNNING, CANCELLED):
        return False  # not ours any more (should not happen while we hold the claim)
    state.trigger = None
    if outcome.pause is not None:  # links were handed out: a late caller of one hears "used"
        state.keep_nonce(outcome.pause.nonce)  # even if no pause stays (applied early, an error)
    state.exec_nonce = None  # its pause (if any) carries the nonce from here on
    if outcome.ask is not None and apply_ask(run, spec, state, outcome, now, events, name):
        return False
    _check_outcome(spec, outcome)
    if outcome.error is not None:
        outcome.error["step"] = name
        return _apply_failure(run, spec, state, name, outcome, now, events)
    state.failures = 0
    state.error = None
    state.output = outcome.output
    if outcome.action_set:
        state.action = outcome.action
    if run.status == CANCELLED:  # cancelled while it ran: it finishes, nothing more runs
        state.status = COMPLETED
        state.finished_at = to_iso(now)
        events.append(event(now, "step_completed", name, note="run was cancelled meanwhile"))
        return False
    pause = None if outcome.exit_requested else outcome.pause
    apply_pause(state, name, spec, pause, now, events)
    if outcome.exit_requested and not run.finished:
        owner = run.steps[step_id]
        if owner is not state:  # an iteration: its foreach step completes with what it has
            _end_iterations(owner, step_id, name, now, events)
        end_open_steps(run, now, SKIPPED)
        run.status = COMPLETED
        run.output = run_output(run, workflow)
        events.append(event(now, "completed", name, reason=outcome.exit_reason, exit=True))
    return False


def _end_iterations(state: StepState, step_id: str, name: str, now: datetime,
                    events: Events) -> None:
    """An iteration (`name`) asked for exit(): the iterations not started are skipped, those
    paused are cancelled (their timers dropped), and the foreach step completes with the
    iterations' outputs so far (null for those that never returned)."""
    for it in state.iterations or ():
        close_node(it, now, SKIPPED if it.status == PENDING else CANCELLED)
    complete_foreach(state, step_id, now, events, note=f"{name} exited the run")


def _apply_rerun(
    state: StepState, step_id: str, pause: PauseRequest, now: datetime, events: Events
) -> None:
    if state.reruns >= pause.max_retries:
        state.rerun_limit = pause.max_retries
        complete(state, step_id, now, events, rerun_limit=pause.max_retries,
                  note=f"rerun ignored: max_retries ({pause.max_retries}) reached; the step's "
                       "return value is its output")
        return
    assert pause.delay is not None
    state.reruns += 1
    state.context = pause.context
    state.status = WAITING
    state.pause = {
        "kind": PAUSE_RERUN, "since": to_iso(now), "due_at": to_iso(now + pause.delay),
        "nonce": pause.nonce, "max_retries": pause.max_retries,
    }
    events.append(event(now, "rerun_scheduled", step_id, due_at=state.pause["due_at"],
                        reruns=state.reruns, max_retries=pause.max_retries))


def _apply_failure(run: Run, spec: StepSpec, state: StepState, name: str, outcome: Outcome,
                   now: datetime, events: Events) -> bool:
    """Wait for a retry if the step's `retry:` allows another attempt; else fail the node
    (True)."""
    assert outcome.error is not None
    state.failures += 1
    state.error = outcome.error
    retry = spec.retry
    if run.status != CANCELLED and retry and state.failures < retry.max_attempts:
        delay = retry.delay_after(state.failures)
        state.status = WAITING
        state.pause = {"kind": PAUSE_RETRY, "since": to_iso(now), "due_at": to_iso(now + delay)}
        events.append(event(now, "retried", name, error=outcome.error,
                            traceback=outcome.traceback, attempt=state.failures,
                            max_attempts=retry.max_attempts, due_at=state.pause["due_at"]))
        return False
    state.status = FAILED
    state.finished_at = to_iso(now)
    events.append(event(now, "step_failed", name, error=outcome.error,
                        traceback=outcome.traceback))
    return True


def fail_run(run: Run, error: dict[str, str], now: datetime, events: Events) -> None:
    """End the run as failed with `error`; its other open steps are cancelled."""
    end_open_steps(run, now, CANCELLED)
    run.status = FAILED
    run.error = error
    events.append(event(now, "failed", error.get("step"), error=error))


def cancel_run(run: Run, now: datetime, reason: str | None, events: Events) -> None:
    """Cancel a run that has not finished; its timers are dropped."""
    if run.finished:
        raise ConflictError(
            f"run {run.run_id} is already {run.status} (at {run.updated_at}); nothing to cancel"
        )
    end_open_steps(run, now, CANCELLED)
    run.status = CANCELLED
    events.append(event(now, "cancelled", reason=reason))


def resumable_steps(run: Run) -> list[str]:
    """Steps that can take data now: suspended ones (not those waiting for an event: they
    take one sent with `wfrun send`) and those waiting for a rerun."""
    return [
        sid for sid, s in run.steps.items()
        if (s.status == SUSPENDED and (s.pause or {}).get("kind") != PAUSE_EVENT)
        or (s.status == WAITING and (s.pause or {}).get("kind") == PAUSE_RERUN)
    ]


def apply_resume(
    run: Run, spec: StepSpec, data: Any, action: str | None, request: dict[str, Any],
    now: datetime, events: Events,
) -> None:
    """Hand data to a suspended step (it completes) or a rerun-pending one (it reruns now)."""
    state = run.steps[spec.id]
    if run.finished and not state.resumed_at:  # if it was resumed, say when (below)
        raise ConflictError(f"run {run.run_id} is {run.status}; it cannot be resumed")
    resume_node(run.run_id, spec, state, spec.id, data, action, request, now, events)


def resume_node(run_id: str, spec: StepSpec, state: StepState, name: str, data: Any,
                action: str | None, request: dict[str, Any], now: datetime,
                events: Events) -> None:
    """Hand data to a suspended node (a step, or its iteration `name`: it completes) or a
    rerun-pending one (it reruns now); ConflictError if it takes no data now."""
    kind = (state.pause or {}).get("kind")
    if state.status == SUSPENDED and kind == PAUSE_SUSPEND:
        state.resume_data = data
        if spec.kind == "wait":
            state.output = data
        if action is not None:
            state.action = action
        state.resumed_at = to_iso(now)
        events.append(event(now, "resumed", name, action=action, source=request["source"]))
        complete(state, name, now, events)  # as a deadline's `on_timeout: resume` records it
    elif state.status == WAITING and kind == PAUSE_RERUN:
        state.status = PENDING
        state.pause = None
        state.resumed_at = to_iso(now)
        if action is not None:
            state.action = action
        state.trigger = {"reason": "resume", "callback_request": request}
        events.append(event(now, "resumed", name, action=action, source=request["source"],
                            rerun=True))
    elif state.status == SUSPENDED and kind == PAUSE_EVENT:
        from ._event_waits import event_wait_message

        raise ConflictError(event_wait_message(run_id, name, state))
    elif state.resumed_at:
        raise ConflictError(
            f"step '{name}' of run {run_id} was already resumed at {state.resumed_at}; "
            "its data is kept"
        )
    else:
        raise ConflictError(
            f"step '{name}' of run {run_id} is {state.status}, not suspended; "
            "nothing to resume"
        )


def apply_pause(state: StepState, name: str, spec: StepSpec, pause: PauseRequest | None,
                now: datetime, events: Events) -> None:
    """Put a step (or a foreach iteration, `name` `step[i]`) into the pause its execution asked
    for: suspended, waiting for a rerun or a sleep; with no pause, it completes."""
    if pause is None:
        complete(state, name, now, events)
    elif pause.kind == "suspend":
        timeout = next(t for t in (pause.timeout, spec.timeout, DEFAULT_TIMEOUT) if t is not None)
        state.status = SUSPENDED
        state.suspend_data = pause.data
        state.pause = {
            "kind": PAUSE_SUSPEND, "since": to_iso(now), "due_at": to_iso(now + timeout),
            "on_timeout": pause.on_timeout or spec.on_timeout or "cancel", "nonce": pause.nonce,
            **labelled(pause.label, spec),
        }
        events.append(event(now, "suspended", name, deadline=state.pause["due_at"],
                            **labelled(pause.label, spec)))
    elif pause.kind == "rerun":
        _apply_rerun(state, name, pause, now, events)
    elif pause.kind == PAUSE_EVENT:  # wait_for_event (`_events.py`, imported on use)
        from ._event_waits import pause_for_event

        pause_for_event(state, name, spec, pause, now, events)
    else:
        assert pause.until is not None
        if pause.until <= now:
            complete(state, name, now, events)
        else:
            state.status = WAITING
            state.pause = {"kind": PAUSE_SLEEP, "since": to_iso(now), "due_at": to_iso(pause.until)}
            events.append(event(now, "sleeping", name, due_at=state.pause["due_at"]))


def _fresh(old: StepState, unfinished: bool, keep_iterations: bool = False) -> StepState:
    """A step made pending again; it keeps its `runs` (they count every execution), if it had
    not completed what its automatic retries keep (its asks' answers, and the context of its
    latest `rerun()`, `ctx.run.context`: a polling cursor is not lost), and with
    `keep_iterations` its completed foreach iterations (the others made pending again)."""
    fresh = StepState(runs=old.runs, started_at=old.started_at,
                      answers=list(old.answers) if unfinished else [],
                      context=old.context if unfinished else None)
    if keep_iterations and old.iterations is not None:
        fresh.iterations = [it if it.status == COMPLETED else _fresh(it, unfinished=True)
                            for it in old.iterations]
    return fresh


def rewind(run: Run, workflow: Workflow, step: str) -> list[str]:
    """Make `step`, every step downstream of it, and every step the failure ended pending.

    A step that had not completed (failed, cancelled) keeps the answers of its `ask()`s, so a
    retry does not ask again what was already answered, the context of its latest `rerun()`,
    and, for a foreach step whose list is
    not made again, its completed iterations, so that only the others execute again; a
    completed step starts afresh. Returns the ids of the steps made pending, in manifest order.
    """
    targets = {step} | workflow.downstream(step)
    reset = []
    for sid, state in run.steps.items():
        if sid in targets or state.status in (FAILED, CANCELLED):
            spec = workflow.steps.get(sid)
            unfinished = state.status != COMPLETED
            source_kept = spec is not None and spec.foreach is not None \
                and spec.foreach not in targets
            run.steps[sid] = _fresh(state, unfinished=unfinished,
                                    keep_iterations=unfinished and source_kept)
            reset.append(sid)
    return reset
