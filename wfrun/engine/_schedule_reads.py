"""What a schedule's kept state must hold (`Store.schedule_state` keeps it as any JSON
object): read checked, so that a state wfrun never wrote (a hand-edited database row) is
refused as damaged by tick and `wfrun schedules`, and reported by `wfrun doctor`."""

from __future__ import annotations

from typing import Any

from wfrun.durations import parse_iso
from wfrun.errors import StateError, WfrunError
from wfrun.store.abc import Store

_TIMES = ("through", "last_fire", "next_fire", "paused_at")


def read_state(store: Store, name: str) -> tuple[dict[str, Any] | None, int]:
    """The state kept for workflow `name`'s schedule and its revision, `(None, 0)` if none:
    StateError if it is not what wfrun writes (a hand edit a store could not see: a database
    row has no checksum), so that nothing acts on it."""
    state, revision = store.schedule_state(name)
    problem = None if state is None else _state_problem(state)
    if problem is not None:
        raise StateError(f"the schedule state of workflow '{name}' is damaged ({problem}); "
                         "remove it and the schedule starts afresh from the next tick "
                         "(docs/schedules.md#where-the-state-is-and-what-tick-costs)")
    return state, revision


def _state_problem(state: Any) -> str | None:
    """What makes `state` unusable as a schedule state, or None."""
    if not isinstance(state, dict):
        return "it is not a JSON object"
    for key in _TIMES:
        if not _time_or_none(state.get(key)):
            return f"{key!r} is not a time"
    skip = state.get("last_skip")
    if skip is not None and not (isinstance(skip, dict) and isinstance(skip.get("fire"), str)
                                 and _time_or_none(skip["fire"])):
        return "'last_skip' is not a skipped fire time"
    kinds = {"paused": bool, "last_run": str, "timetable": str}
    for key, kind in kinds.items():
        if state.get(key) is not None and not isinstance(state[key], kind):
            return f"{key!r} is not a {'boolean' if kind is bool else 'string'}"
    return None


def _time_or_none(value: Any) -> bool:
    if value is None:
        return True
    if not isinstance(value, str):
        return False
    try:
        parse_iso(value)
    except ValueError:
        return False
    return True


def state_problems(store: Store) -> list[dict[str, str]]:
    """Each schedule state that cannot be used, as `wfrun doctor` reports a problem
    (`{"path", "kind": "schedule", "reason"}`); reads and changes nothing else."""
    try:
        names = store.schedule_workflows()
    except WfrunError as exc:
        return [{"path": "schedules", "kind": "schedule", "reason": exc.message}]
    found = []
    for name in names:
        try:
            read_state(store, name)
        except WfrunError as exc:
            found.append({"path": f"schedule of workflow '{name}'", "kind": "schedule",
                          "reason": exc.message})
    return found
