"""`wfrun schedules`: each schedule's row (next and last fire, last run, paused), pause and
unpause. The state each schedule keeps, and how `tick` fires it, are in `_timetable`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from wfrun import loader
from wfrun._specs import Workflow
from wfrun.durations import parse_iso, to_iso
from wfrun.errors import ConflictError, NotFoundError, WfrunError

from ._schedule_names import shared_names
from ._schedule_reads import read_state
from ._timetable import (
    GRACE,
    SAVE_ATTEMPTS,
    Engine,
    run_status,
    scheduled,
    timetable_of,
)

if TYPE_CHECKING:
    from wfrun._firetimes import Timetable


def _blank(name: str, path: str) -> dict[str, Any]:
    """A `wfrun schedules --json` row of the schedule of workflow `name` (manifest `path`),
    with nothing known yet."""
    return {
        "workflow": name, "path": path, "cron": None, "every": None, "timezone": None,
        "input": None, "overlap": None, "catchup": None, "paused": False, "next_fire": None,
        "next_fire_local": None, "last_fire": None, "last_run": None, "last_run_status": None,
        "last_skip": None, "error": None,
    }


def _manifest_row(workflow: Workflow) -> dict[str, Any]:
    """The row of a scheduled workflow with what its manifest says, nothing of its state."""
    schedule = workflow.schedule
    assert schedule is not None
    row = _blank(workflow.name, workflow.path)
    row.update(cron=schedule.cron, every=schedule.every_text, timezone=schedule.timezone,
               input=schedule.input, overlap=schedule.overlap, catchup=schedule.catchup)
    return row


def describe(engine: Engine, workflow: Workflow) -> dict[str, Any]:
    """What `wfrun schedules` shows of one schedule (its `--json` row)."""
    now = engine.clock.now()
    row = _manifest_row(workflow)
    try:
        state, _ = read_state(engine.store, workflow.name)
        state = state or {}
        row.update(paused=bool(state.get("paused")), last_fire=state.get("last_fire"),
                   last_run=state.get("last_run"), last_skip=state.get("last_skip"))
        if row["last_run"]:
            row["last_run_status"] = run_status(engine, row["last_run"]) or "deleted"
        if not row["paused"]:
            timetable = timetable_of(workflow)
            upcoming = _upcoming(timetable, state, now)
            row["next_fire"] = to_iso(upcoming)
            row["next_fire_local"] = timetable.local(upcoming).isoformat(timespec="seconds")
    except WfrunError as exc:
        row["error"] = exc.message
        row["exit_code"] = exc.exit_code
    return row


def _upcoming(timetable: Timetable, state: dict[str, Any], now: datetime) -> datetime:
    """The fire time of the next run the schedule starts (in the past when a tick is overdue)."""
    catchup = timetable.schedule.catchup
    through = parse_iso(state["through"]) if state.get("through") else now - GRACE
    if catchup == "none":
        through = max(through, now - GRACE)
    if catchup != "all":
        latest = timetable.latest(through, now)
        if latest is not None:
            return latest
    return timetable.next_after(through)


def unloadable(path: str, exc: WfrunError) -> dict[str, Any]:
    """The row of a manifest with a `schedule:` that cannot be loaded: its `error` is what
    tick reports of it (its kept state is not read: which schedule it is is not certain)."""
    row = _blank(loader.stated_name(path), path)
    row.update(error=f"{exc.message} (its schedule cannot fire until this is fixed)",
               exit_code=exc.exit_code)
    return row


def _sharing(workflow: Workflow, exc: WfrunError) -> dict[str, Any]:
    """The row of a schedule whose workflow name another scheduled manifest states too: its
    `error` is what tick reports of the name (the state they would share is not read)."""
    row = _manifest_row(workflow)
    row.update(error=exc.message, exit_code=exc.exit_code)
    return row


def listing(engine: Engine) -> list[dict[str, Any]]:
    """A row for every manifest of the workflows directory with a `schedule:` (by workflow
    name), one with `error` set for a schedule that cannot be evaluated, its manifest's
    included."""
    workflows, broken = scheduled(engine)
    unique, shared = shared_names(workflows)
    rows = [describe(engine, w) for w in unique]
    rows += [_sharing(w, shared[w.name]) for w in workflows if w.name in shared]
    rows += [unloadable(path, exc) for path, exc in broken]
    return sorted(rows, key=lambda r: (r["workflow"], r["path"]))


def pause(engine: Engine, name: str, paused: bool) -> tuple[dict[str, Any], bool]:
    """Pause (or unpause) the schedule of workflow `name`; its row and whether it changed.

    Unpausing moves `through` to now: fire times of the paused interval are not caught up."""
    # two scheduled manifests of this name share one state: renaming one is the way out (by
    # name, before the lookup, whose "give one of them by its path" would be refused too)
    _, shared = shared_names(scheduled(engine)[0])
    if name in shared:
        raise shared[name]
    workflow = engine.workflow(name, check_code=False)
    if workflow.schedule is None:
        raise NotFoundError(f"workflow '{workflow.name}' has no schedule ({workflow.path}); "
                            "give it a 'schedule:' key ('wfrun schedules' lists the schedules)")
    if workflow.name in shared:  # (given by its path: the state is not its)
        raise shared[workflow.name]
    now = engine.clock.now()
    for _ in range(SAVE_ATTEMPTS):
        state, revision = read_state(engine.store, workflow.name)
        mine = dict(state or {"through": to_iso(now)})
        if bool(mine.get("paused")) == paused:
            return describe(engine, workflow), False
        mine["paused"] = paused
        if paused:
            mine["paused_at"] = to_iso(now)
        else:
            through = parse_iso(mine["through"]) if mine.get("through") else now
            mine["through"] = to_iso(max(through, now))
            mine["paused_at"] = None
            mine.pop("next_fire", None)  # the next tick works it out again
        try:
            engine.store.save_schedule_state(workflow.name, mine, revision)
        except ConflictError:
            continue
        engine.manifests.flush()
        return describe(engine, workflow), True
    raise ConflictError(f"the schedule of workflow '{workflow.name}' kept changing; try again")
