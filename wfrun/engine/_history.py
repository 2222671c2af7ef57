"""History events as the engine writes them (`{"at", "type", "step", ...}`), and completing a
node with its event: the leaf every state-changing module of the engine builds on."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun.durations import to_iso
from wfrun.model import COMPLETED, StepState

Events = list[dict[str, Any]]


def event(now: datetime, type_: str, step: str | None = None, **fields: Any) -> dict[str, Any]:
    """One history event: `{"at", "type", "step", ...}`."""
    return {"at": to_iso(now), "type": type_, "step": step, **fields}


def complete(state: StepState, name: str, now: datetime, events: Events, **note: Any) -> None:
    """Complete a node (a step, or an iteration `name`): no pause left."""
    state.status = COMPLETED
    state.pause = None
    state.finished_at = to_iso(now)
    events.append(event(now, "step_completed", name, runs=state.runs, **note))
