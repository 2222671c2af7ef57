"""Waiting for events as state (pure, no I/O): a step paused by `wait_for_event`, the events
kept in the run's inbox handed to it, in order (SPEC §3; the doing is in `_events.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun import _schema
from wfrun._specs import StepSpec
from wfrun._textdata import fields_data
from wfrun.durations import to_iso
from wfrun.errors import UsageError, WfrunError
from wfrun.flow import PauseRequest
from wfrun.manifest import DEFAULT_TIMEOUT, LABEL_PATTERN
from wfrun.model import PAUSE_EVENT, SUSPENDED, Run, StepState

from ._ask import labelled
from ._history import Events, complete, event

EVENT = "event"  # the kind of an inbox entry that is an event (and of an event wait's pause)


def check_event_name(name: str) -> None:
    """Refuse an event name that `wait_for_event` could not wait for (UsageError)."""
    if not LABEL_PATTERN.fullmatch(name):
        raise UsageError(f"event name {name!r} is not valid: use 1 to 100 letters, digits or "
                         "'_.:@-', starting with a letter or digit")


def is_event_wait(state: StepState | None) -> bool:
    """True if the step is suspended waiting for an event."""
    return state is not None and state.status == SUSPENDED \
        and (state.pause or {}).get("kind") == PAUSE_EVENT


def waiting_steps(run: Run, name: str) -> list[str]:
    """The steps waiting for event `name`, in manifest order (the first one takes it)."""
    return [sid for sid, state in run.steps.items()
            if is_event_wait(state) and (state.pause or {}).get("event") == name]


def event_schema(run: Run, name: str) -> Any:
    """The schema event `name`'s data must match: the one of the step that would take it."""
    steps = waiting_steps(run, name)
    return (run.steps[steps[0]].pause or {}).get("schema") if steps else None


def pause_for_event(state: StepState, name: str, spec: StepSpec, pause: PauseRequest,
                    now: datetime, events: Events) -> None:
    """Suspend a step (`name`) that called `wait_for_event`; the deadline and what happens
    then are a suspension's (the call's arguments, else the step's keys, else 24 h, cancel),
    and so is its label (the step's `label:`, kept in the pause and the `suspended` event)."""
    timeout = next(t for t in (pause.timeout, spec.timeout, DEFAULT_TIMEOUT) if t is not None)
    state.status = SUSPENDED
    state.pause = {
        "kind": PAUSE_EVENT, "since": to_iso(now), "due_at": to_iso(now + timeout),
        "on_timeout": pause.on_timeout or spec.on_timeout or "cancel", "nonce": pause.nonce,
        "event": pause.event, **({"schema": pause.schema} if pause.schema is not None else {}),
        **labelled(pause.label, spec),
    }
    events.append(event(now, "suspended", name, deadline=state.pause["due_at"],
                        event=pause.event, **labelled(pause.label, spec)))


def event_wait_message(run_id: str, step: str, state: StepState) -> str:
    """Why a step waiting for an event is not resumed (`wfrun resume`): send the event."""
    name = (state.pause or {}).get("event")
    return (f"step '{step}' of run {run_id} waits for event '{name}', not for a resume; "
            f"send it with 'wfrun send {run_id} {name} --data JSON'")


def consume_events(run: Run, now: datetime, events: Events) -> list[tuple[dict[str, Any], str]]:
    """Hand each event kept in the run's inbox, oldest first, to the first step (manifest
    order) waiting for its name; an event whose data does not match that step's schema (it was
    sent before the wait said what it takes) is discarded into history with the reason.
    Returns the (entry, step) pairs handed over."""
    taken: list[tuple[dict[str, Any], str]] = []
    if run.finished or not any(e.get("kind") == EVENT for e in run.inbox):
        return taken
    kept: list[dict[str, Any]] = []
    for entry in run.inbox:
        steps = waiting_steps(run, entry["name"]) if entry.get("kind") == EVENT else []
        if not steps:
            kept.append(entry)
            continue
        step = steps[0]
        state = run.steps[step]
        schema = (state.pause or {}).get("schema")
        if "fields" in entry:  # sent as text (a form, query parameters): typed as asked now
            entry["data"] = fields_data(schema, entry.pop("fields"))
        problem = _data_problem(schema, entry, step)
        if problem is not None:
            events.append(event(now, "discarded", step, event=entry["name"], reason=problem,
                                data=entry.get("data"), source=entry.get("source"),
                                sent_at=entry["at"]))
            continue
        _deliver(state, step, entry, now, events)
        taken.append((entry, step))
    run.inbox = kept
    return taken


def _data_problem(schema: Any, entry: dict[str, Any], step: str) -> str | None:
    if schema is None:
        return None
    try:
        _schema.validate(schema, entry.get("data"), f"data of event '{entry['name']}'")
    except WfrunError as exc:
        return f"it was sent before step '{step}' waited for it, and {exc.message}"
    return None


def _deliver(state: StepState, step: str, entry: dict[str, Any], now: datetime,
             events: Events) -> None:
    """The step waiting for the event completes, with the event's data as its resume data."""
    state.resume_data = entry.get("data")
    state.resumed_at = to_iso(now)
    events.append(event(now, "resumed", step, event=entry["name"], source=entry.get("source"),
                        sent_at=entry["at"]))
    complete(state, step, now, events)  # as a resume's does (`resume_node`)
