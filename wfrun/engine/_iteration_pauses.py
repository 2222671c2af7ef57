"""Timers and resumes of foreach iterations: firing what is due, handing data to one."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import Workflow
from wfrun.durations import format_duration, parse_iso, to_iso
from wfrun.errors import ConflictError
from wfrun.model import (
    FAILED,
    PAUSE_RERUN,
    PAUSE_SUSPEND,
    PENDING,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)

from ._ask import answer_timeout, is_ask, record_answer
from ._composite import label, node, settle
from ._schedule import Events, event
from ._transitions import _complete, cancel_run, fire_timer


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
            fire_timer(it, name, now, events)
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
        record_answer(it, name, run.run_id, workflow.steps[step_id], data, action, request, now,
                      events, asked)
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
