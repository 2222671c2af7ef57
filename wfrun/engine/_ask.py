"""`ctx.flow.ask()`: suspending a step at an unanswered ask, and re-executing it when answered."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun import _schema
from wfrun._detach import stored_or_problem
from wfrun._specs import StepSpec
from wfrun.durations import to_iso
from wfrun.errors import ConflictError, SchemaViolation
from wfrun.manifest import DEFAULT_TIMEOUT
from wfrun.model import CANCELLED, PAUSE_SUSPEND, PENDING, SUSPENDED, Run, StepState

from ._actions import route_problem
from ._history import Events, event


def is_ask(state: StepState | None) -> bool:
    """True if the step is paused at an unanswered `ask()` (not a `suspend()`)."""
    return state is not None and bool(state.pause) and "ask" in (state.pause or {})


def ask_nonce(state: StepState | None) -> str | None:
    """The nonce of the ask the step is suspended at, or None if it is not at an ask."""
    return str((state.pause or {})["nonce"]) if state is not None and is_ask(state) else None


def labelled(label: str | None, spec: StepSpec) -> dict[str, str]:
    """`{"label": NAME}` for a pause named in code (`label=`) or by the step's `label:`, else
    nothing; kept in the pause so that `wfrun resume RUN --label NAME` finds it."""
    name = label or spec.label
    return {"label": name} if name else {}


def expected_schema(state: StepState | None, spec: StepSpec | None) -> Any:
    """The schema resume data must match: the step's `resume_schema` and the ask's `schema`."""
    step_schema = spec.resume_schema if spec else None
    ask_schema = (state.pause or {}).get("schema") if state is not None and is_ask(state) else None
    if ask_schema is None or step_schema is None:
        return ask_schema if ask_schema is not None else step_schema
    return {"allOf": [step_schema, ask_schema]}


def apply_ask(
    run: Run, spec: StepSpec, state: StepState, outcome: Any, now: datetime, events: Events,
    name: str | None = None,
) -> bool:
    """Suspend a step (or its foreach iteration `name`) that stopped at an unanswered ask.

    Returns False, leaving `outcome.error` set, when the execution must fail instead (it also
    raised, asked after or before another pause or an exit, or its ask data is not JSON or
    does not match the step's `suspend_schema`).
    """
    ask = outcome.ask
    if outcome.error is not None:
        return False
    if outcome.action_set and (problem := route_problem(spec, outcome.action)):
        outcome.error = {"step": spec.id, "type": "FlowError", "message": problem}
        return False
    if outcome.pause is not None or outcome.exit_requested:
        other = "exit" if outcome.exit_requested else outcome.pause.kind
        outcome.error = {"step": spec.id, "type": "FlowError", "message": (
            f"step '{spec.id}' called flow.{other}() and an unanswered flow.ask() in the same "
            "execution; a step that asks cannot also suspend, rerun, sleep or exit")}
        return False
    copies = []  # detached: step code may still hold and change what it asked with
    for what, value in (("data", ask.data), ("a schema", ask.schema)):
        copy, problem = stored_or_problem(value)
        copies.append(copy)
        if problem:
            outcome.error = {"step": spec.id, "type": "TypeError", "message": (
                f"step '{spec.id}' asked with {what} that is not JSON-serialisable "
                f"(a {type(value).__name__}): {problem}")}
            return False
    ask.data, ask.schema = copies
    try:
        _schema.validate(spec.suspend_schema, ask.data, f"ask data of step '{spec.id}'")
    except SchemaViolation as exc:
        outcome.error = {"step": spec.id, "type": "SchemaViolation", "message": exc.message}
        return False
    if run.status == CANCELLED:  # cancelled while it ran: it stays cancelled
        return True
    timeout = next(t for t in (ask.timeout, spec.timeout, DEFAULT_TIMEOUT) if t is not None)
    number = ask.index + 1
    state.status = SUSPENDED
    state.error = None
    state.suspend_data = ask.data
    if outcome.action_set:
        state.action = outcome.action
    state.answers = state.answers[:ask.index]
    state.pause = {
        "kind": PAUSE_SUSPEND, "since": to_iso(now), "due_at": to_iso(now + timeout),
        "on_timeout": ask.on_timeout or spec.on_timeout or "cancel", "nonce": ask.nonce,
        "ask": number, "schema": ask.schema, **labelled(ask.label, spec),
    }
    events.append(event(now, "suspended", name or spec.id, deadline=state.pause["due_at"],
                        ask=number, **labelled(ask.label, spec)))
    return True


def answer_ask(
    run: Run, spec: StepSpec, data: Any, action: str | None, request: dict[str, Any],
    now: datetime, events: Events, nonce: str | None,
) -> bool:
    """Record the answer to the ask the step is suspended at; it then executes again.

    `nonce` identifies the ask the caller saw (None: it saw no ask). Returns False when the
    step is not at an ask, for the ordinary resume to handle. Raises SchemaViolation or
    ConflictError (nothing changed) for data that does not fit, or an ask answered meanwhile.
    """
    state = run.steps[spec.id]
    if run.finished or state.status != SUSPENDED or not is_ask(state):
        return False
    record_answer(state, spec.id, run.run_id, spec, data, action, request, now, events, nonce)
    return True


def record_answer(
    state: StepState, name: str, run_id: str, spec: StepSpec, data: Any, action: str | None,
    request: dict[str, Any], now: datetime, events: Events, nonce: str | None,
) -> None:
    """Check and record the answer to the ask a step (or iteration `name`) is suspended at."""
    pause = state.pause or {}
    number = int(pause["ask"])
    if pause["nonce"] != nonce:
        raise ConflictError(
            f"step '{name}' of run {run_id} now waits for the answer to its ask #{number}, "
            f"asked at {pause['since']} after this resume began; check it with 'show' and "
            "resume again"
        )
    _schema.validate(expected_schema(state, spec), data,
                     f"answer to ask #{number} of step '{name}'")
    _answer(state, number, data, {"reason": "resume", "callback_request": request})
    if action is not None:
        state.action = action
    state.resumed_at = to_iso(now)
    events.append(event(now, "resumed", name, action=action, source=request["source"],
                        ask=number))


def answer_timeout(state: StepState) -> bool:
    """On an ask's deadline with `on_timeout: resume`: answer it with None (False: not an ask)."""
    if not is_ask(state):
        return False
    _answer(state, int((state.pause or {})["ask"]), None, {"reason": "timeout",
                                                           "callback_request": None})
    return True


def _answer(state: StepState, number: int, data: Any, trigger: dict[str, Any]) -> None:
    state.answers = [*state.answers[:number - 1], data]
    state.resume_data = data
    state.status = PENDING
    state.pause = None
    state.trigger = trigger
