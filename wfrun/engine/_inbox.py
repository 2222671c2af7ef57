"""The run's inbox: resumes accepted for a step that is still executing (SPEC §3, "Early
callbacks are never lost"), kept durably until the step pauses and then applied in that same
state change, or discarded into history with the reason if the step ends without pausing.

An entry is `{"kind": "resume", "step", "nonce", "data", "action", "request", "at"}`; `nonce`
is the one of the links the step's execution was handed (`StepState.exec_nonce`), so an entry
belongs to exactly one execution attempt (a recovered attempt keeps its nonce). Events sent
to the run that no step waited for share the inbox (`{"kind": "event", ...}`, `_events.py`):
each is taken, oldest first, when a step waits for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun._specs import Workflow
from wfrun.durations import to_iso
from wfrun.errors import ConflictError
from wfrun.model import (
    CANCELLED,
    COMPLETED,
    FAILED,
    PAUSE_EVENT,
    PAUSE_RERUN,
    PAUSE_RETRY,
    PAUSE_SLEEP,
    PAUSE_SUSPEND,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)

from ._actions import either, needs_an_action
from ._composite import apply_iteration_resume, node_of, step_of
from ._history import Events, event
from ._transitions import apply_resume

RESUME = "resume"
EVENT = "event"  # an event sent to the run that no step waited for yet (`_events.py`)


class StepNotExecuting(Exception):
    """The step an early resume was for has paused or ended meanwhile."""


def executing_nonce(state: StepState | None) -> str | None:
    """The nonce of the links held by the step's current execution, if it is executing (or
    was, and its interrupted execution awaits recovery)."""
    if state is None or state.exec_nonce is None or state.status in (SUSPENDED, WAITING):
        return None
    return state.exec_nonce


def accepted_entry(run: Run, step: str) -> dict[str, Any] | None:
    """The resume already accepted for the step's (or iteration's) current execution, if
    any."""
    nonce = executing_nonce(node_of(run, step))
    return next((e for e in run.inbox if e["kind"] == RESUME and e["step"] == step
                 and e["nonce"] == nonce), None) if nonce else None


def taken_message(run: Run, step: str, entry: dict[str, Any]) -> str:
    """Why a resume for a step that already has one accepted (`entry`) is refused."""
    return (f"step '{step}' of run {run.run_id} already has a resume accepted at {entry['at']} "
            f"(from {entry['request'].get('source')}); it applies when the step pauses and "
            "this one is refused")


def buffer_resume(
    run: Run, step: str, data: Any, action: str | None, request: dict[str, Any],
    now: datetime, events: Events,
) -> None:
    """Keep a resume for a step (or foreach iteration, `step[2]`) that is executing; it
    applies when the step pauses.

    Exactly one resume wins per suspension: a second one is refused with ConflictError."""
    nonce = executing_nonce(node_of(run, step))
    assert nonce is not None, "buffer_resume needs an executing step"
    earlier = accepted_entry(run, step)
    if earlier is not None:
        raise ConflictError(taken_message(run, step, earlier))
    run.inbox.append({"kind": RESUME, "step": step, "nonce": nonce, "data": data,
                      "action": action, "request": request, "at": to_iso(now)})
    events.append(event(now, "accepted", step, action=action, source=request.get("source"),
                        note="the step is still executing; applies when it pauses"))


def settle_inbox(run: Run, workflow: Workflow, now: datetime, events: Events) -> None:
    """Apply each accepted resume whose step has paused with the links it was handed; discard
    (into history, with the reason) those whose step ended without such a pause."""
    if not run.inbox:
        return
    kept: list[dict[str, Any]] = []
    for entry in run.inbox:
        state = node_of(run, entry["step"]) if entry["kind"] == RESUME else None
        if state is None:
            kept.append(entry)
            continue
        if state.exec_nonce == entry["nonce"]:
            kept.append(entry)  # still executing (or awaiting recovery)
            continue
        pause = state.pause or {}
        spec = workflow.steps.get(step_of(entry["step"]))
        if spec is not None and pause.get("nonce") == entry["nonce"] and not run.finished \
                and pause.get("kind") in (PAUSE_SUSPEND, PAUSE_RERUN):
            if entry["action"] is None and entry["step"] == spec.id \
                    and needs_an_action(workflow, spec, state):
                # checked when accepted, while the step could still route: it suspended without
                events.append(_discarded(entry, now, (
                    "it gave no action, and every step after this one runs only for one (when:) "
                    f"while the step routed to none; resume it again with one of "
                    f"{either(workflow.actions_for(spec.id))}")))
                continue
            # the request as the step sees it (SPEC §2 keys only): when it came is in history
            request = entry["request"]  # (`accepted`) and the inbox entry's `at`
            if entry["step"] == spec.id:
                apply_resume(run, spec, entry["data"], entry["action"], request, now, events)
            else:  # a foreach iteration
                index = int(entry["step"][len(spec.id) + 1:-1])
                apply_iteration_resume(run, workflow, spec.id, index, entry["data"],
                                       entry["action"], request, now, events)
            next(e for e in reversed(events) if e["type"] == "resumed")["early"] = True
            continue
        if entry.get("handed") and state.status == COMPLETED:
            # the execution that recovered the step was handed it as ctx.run.callback_request
            # and completed without pausing again: taken, not lost (SPEC §6)
            events.append(event(now, "resumed", entry["step"], source=entry["request"].get(
                "source"), action=entry["action"], early=True, via="callback_request"))
            continue
        events.append(_discarded(entry, now, _why_discarded(run, state)))
    run.inbox = kept
    if any(entry["kind"] == EVENT for entry in kept):  # events kept until a step waits for them
        from ._event_waits import consume_events

        consume_events(run, now, events)


def _discarded(entry: dict[str, Any], now: datetime, reason: str) -> dict[str, Any]:
    """The history event of an accepted resume that was not applied, and why."""
    return event(now, "discarded", entry["step"], reason=reason, data=entry["data"],
                 action=entry["action"], source=entry["request"].get("source"),
                 accepted_at=entry["at"])


def _why_discarded(run: Run, state: StepState) -> str:
    pause = state.pause or {}
    if run.status == CANCELLED or state.status == CANCELLED:
        return "the run was cancelled before the step paused"
    if state.status == FAILED or pause.get("kind") == PAUSE_RETRY:
        error = state.error or {}
        return f"the step raised {error.get('type', 'an error')} instead of pausing"
    if state.status == COMPLETED and state.rerun_limit is not None:
        return (f"the step's rerun() was ignored: it had reached its rerun limit "
                f"(max_retries={state.rerun_limit}), so the step completed")
    if state.status == COMPLETED:
        return "the step completed without calling suspend() or rerun()"
    if run.status == FAILED:
        return "the run failed before the step paused"
    kind = pause.get("kind")
    if "ask" in pause:  # an ask hands out no links while the step executes
        return (f"the step asked (ask #{pause['ask']}) instead of suspending; its question "
                "takes an answer once it is asked: resume the step again")
    if kind == PAUSE_EVENT:
        return (f"the step waits for event '{pause.get('event')}', which takes no resume: "
                "send the event ('wfrun send')")
    if kind == PAUSE_SLEEP:
        return "the step sleeps, which takes no data"
    return f"the step is {state.status} with a pause that takes no data"
