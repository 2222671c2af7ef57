"""Timers and deadlines fired, and interrupted executions recovered (pure, no I/O): what a
tick does to a run, for a step (`fire_due`) or one node, a step or a foreach iteration
(`fire_node`), by the state machine of `_transitions.py`."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import Workflow
from wfrun.durations import format_duration, parse_iso, to_iso
from wfrun.model import (
    FAILED,
    PAUSE_EVENT,
    PAUSE_SLEEP,
    PAUSE_SUSPEND,
    PENDING,
    RUNNING,
    Run,
    StepState,
)

from ._ask import answer_timeout
from ._history import Events, complete, event
from ._transitions import cancel_run, fail_run, step_error


def fire_timer(state: StepState, name: str, now: datetime, events: Events) -> None:
    """A due sleep completes the step (or iteration); a due rerun or retry makes it pending."""
    pause = state.pause or {}
    kind = pause["kind"]
    events.append(event(now, "timer_fired", name, kind=kind, due_at=pause["due_at"]))
    if kind == PAUSE_SLEEP:
        complete(state, name, now, events)
    else:
        state.status = PENDING
        state.pause = None
        state.trigger = {"reason": kind, "callback_request": None}


def accepted_request(run: Run, step_id: str, state: StepState) -> dict[str, Any]:
    """`{"callback_request": ...}` of the resume accepted early (`_inbox`) for the interrupted
    execution of the step or iteration `step_id` (`each[2]`), if any, for the execution that
    recovers it: code that pauses only on its first run (`if ctx.run.runs == 1:
    ctx.flow.rerun(...)`) would never pause again to take it. The entry is marked as handed
    over (see `_inbox.settle_inbox`)."""
    entry = next((e for e in run.inbox if e.get("kind") == "resume" and e["step"] == step_id
                  and state.exec_nonce is not None and e["nonce"] == state.exec_nonce), None)
    if entry is None:
        return {}
    entry["handed"] = True
    return {"callback_request": entry["request"]}


def recover_step(run: Run, step_id: str, state: StepState, now: datetime,
                 events: Events) -> None:
    """A step whose execution was interrupted (its executor died: the caller holds the run's
    claim) is to execute again, as `recovered` (SPEC §6)."""
    state.status = PENDING
    state.trigger = {"reason": "recovered", **accepted_request(run, step_id, state)}
    events.append(event(now, "recovered", step_id, runs=state.runs))


def recover_interrupted(run: Run, now: datetime, events: Events) -> None:
    """`recover_step` for every step of the run left executing (the caller holds the claim)."""
    for sid, state in run.steps.items():
        if state.status == RUNNING and not run.finished:
            recover_step(run, sid, state, now, events)


def fire_due(run: Run, workflow: Workflow, now: datetime, events: Events) -> list[tuple[str, str]]:
    """Fire every timer due at `now` and recover steps whose executor died.

    Returns (step, reason) pairs, reason one of rerun, sleep, retry, timeout, recovered.
    """
    fired: list[tuple[str, str]] = []
    for sid, state in run.steps.items():
        if run.finished:
            break
        if state.status == RUNNING:  # the caller holds the claim: its executor is gone
            recover_step(run, sid, state, now, events)
            fired.append((sid, "recovered"))
            continue
        # no timer of its own: a composite step's timers are its iterations' or child's
        reason = fire_node(run, workflow, sid, state, sid, now, events)
        if reason is None:
            continue
        if state.status == FAILED:  # its deadline passed with `on_timeout: fail`
            fail_run(run, state.error or {}, now, events)
        fired.append((sid, reason))
    if not fired and run.status == RUNNING and not run.finished:
        # Left ready with no step executing (a link's resume `wfrun serve` accepted, a new
        # run it created, a stopped `tick --watch`, a resume that found the run busy): tick
        # continues it. Nothing was interrupted, so history has no `recovered` event.
        fired.append(("", "recovered"))
    return fired


def fire_node(run: Run, workflow: Workflow, step_id: str, state: StepState, name: str,
              now: datetime, events: Events) -> str | None:
    """Fire the node's timer if it is due at `now`: a sleep completes it, a rerun or a retry
    makes it pending, a suspension's deadline does what its `on_timeout` says (`time_out`).
    The reason (the timer's kind, or timeout), or None if nothing was due."""
    pause = state.pause
    if not pause or not pause.get("due_at") or parse_iso(pause["due_at"]) > now:
        return None
    if pause["kind"] in (PAUSE_SUSPEND, PAUSE_EVENT):
        time_out(run, workflow, step_id, state, name, now, events)
        return "timeout"
    fire_timer(state, name, now, events)
    return str(pause["kind"])


def time_out(run: Run, workflow: Workflow, step_id: str, state: StepState, name: str,
             now: datetime, events: Events) -> None:
    """A node's suspension passed its deadline: with `on_timeout: resume` it resumes with no
    data (an ask is answered with None and executes again), with `fail` it fails (the caller
    fails the run, or settles the foreach step), otherwise the run is cancelled."""
    pause = state.pause or {}
    on_timeout = pause.get("on_timeout", "cancel")
    # the timeout it had (a tick may fire it later than its deadline)
    allowed = format_duration(parse_iso(pause["due_at"]) - parse_iso(pause["since"]))
    events.append(event(now, "timed_out", name, on_timeout=on_timeout, deadline=pause["due_at"]))
    if on_timeout == "resume" and answer_timeout(state):
        pass  # an ask answered with None: the step executes again
    elif on_timeout == "resume":
        state.resume_data = None
        if step_id in workflow.steps and workflow.steps[step_id].kind == "wait":
            from ._approvals import timed_out_output  # the decisions so far, if any

            state.output = timed_out_output(state)
        complete(state, name, now, events, note="timed out; resumed with no data")
    elif on_timeout == "fail":
        message = (f"step '{name}' was not resumed before its deadline {pause['due_at']} "
                   f"(its timeout: {allowed})")
        if pause.get("event"):
            message = message.replace("was not resumed", f"received no event '{pause['event']}'")
        state.status = FAILED
        state.pause = None
        state.error = step_error(name, "TimeoutError", message)
        state.finished_at = to_iso(now)
    else:
        cancel_run(run, now, f"step '{name}' timed out (not resumed within {allowed})", events)
