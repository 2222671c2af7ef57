"""Schedules (SPEC §11): `tick` starts the runs that scheduled workflows are owed; `wfrun
schedules` lists them, pauses and unpauses them (`_schedule_control`).

Each scheduled workflow has a state in the store (`Store.schedule_state`):

    through     every fire time at or before it is handled (started, skipped or dropped)
    last_fire, last_run     the fire time and id of the latest run the schedule started
    paused, paused_at       a paused schedule starts nothing
    next_fire, timetable    the first fire time after `through`, for the timetable it was
                            computed for (`Schedule.describe()`): while the clock is before it,
                            a tick reads the state and nothing else (no cron library)
    last_skip   the latest fire time `overlap: skip` passed over, and why

A firing starts the run `sched-WORKFLOW-YYYYMMDDTHHMMZ` (seconds too for an `every:` of
seconds), so two ticks, several workers or a retried tick that handle the same fire time start
one run: the run is created before `through` moves past its fire time, and a run that exists
already counts as started. The state is saved with its revision checked (optimistic
concurrency); a tick that lost the race merges what it did into the winner's state.

Missed fire times (nothing ticked): `catchup: latest` starts one run, for the most recent;
`all` starts one per fire time, oldest first, at most `CATCHUP_ALL_PER_TICK` per tick (the
following ticks start the rest); `none` starts a run only for a fire time less than `GRACE`
old. A schedule that a tick sees for the first time has missed nothing: that tick starts a run
only for a fire time less than `GRACE` old (the latest), as `none` would. Unpausing moves
`through` to the unpause time: the fire times of the paused interval are skipped, whatever
`catchup` says.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import os
import re
import time
from collections.abc import Collection
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, cast

from wfrun import loader
from wfrun._specs import Workflow
from wfrun.durations import parse_iso, to_iso
from wfrun.errors import ConflictError, LeftoverRecords, NotFoundError, StateError, WfrunError
from wfrun.model import FINISHED, Run

from ._schedule_names import shared_names
from ._schedule_reads import read_state

if TYPE_CHECKING:
    from collections.abc import Callable

    from wfrun._firetimes import Timetable
    from wfrun.clock import Clock
    from wfrun.store.abc import Store

    from ._deferred_manifests import DeferredManifestCache
    from ._result import Result, TickReport

class Engine(Protocol):
    """What schedules need of the engine (an `Engine`, or the runner `tick` hands over)."""

    @property
    def store(self) -> Store:
        """Where runs and schedule states are kept."""
        ...

    @property
    def clock(self) -> Clock:
        """Where the time comes from."""
        ...

    @property
    def workflows_dir(self) -> str:
        """Where the scheduled workflows are found."""
        ...

    @property
    def manifests(self) -> DeferredManifestCache:
        """Parsed manifests, handed to the store once a command changed state."""
        ...

    @property
    def should_stop(self) -> Callable[[], bool]:
        """True once `tick --watch` was asked to stop."""
        ...

    def workflow(self, name_or_path: str, *, check_code: bool = True) -> Workflow:
        """Find and load a workflow by name or manifest path."""
        ...

    def start(self, name_or_path: str, input: Any = ..., run_id: str | None = None,
              parent: dict[str, Any] | None = None) -> Result:
        """Create a run and execute it until it completes, fails or pauses."""
        ...

    def cancel(self, run_id: str, reason: str | None = None,
               check: Callable[[Run], None] | None = None) -> Result:
        """Cancel a run that has not finished."""
        ...


GRACE = timedelta(minutes=5)  # how late a fire time may be seen and still be on time
CATCHUP_ALL_PER_TICK = 100
REASON = "schedule"  # the `reason` of the runs a tick started, in its report
SAVE_ATTEMPTS = 5
# how long a claimed run that does not exist yet is looked for (see `_previous_status`): a
# tick creates the run of a fire time it claimed within milliseconds
CLAIM_WAIT_SECONDS = 1.0
_DECLARES = re.compile(rb"^[\"']?schedule[\"']?\s*:", re.MULTILINE)
# manifest path -> (its stat signature, whether its bytes can hold a `schedule:` key)
_SCANNED: dict[str, tuple[tuple[int, int, int], bool, bool]] = {}


# -- finding scheduled workflows -----------------------------------------------------------------

def _scan(path: str) -> tuple[bool, bool]:
    """(whether the manifest may have a schedule, whether it has a top-level `schedule:` line),
    from its bytes, remembered while the file is unchanged. A manifest whose text never says
    `schedule` (nor escapes a character, as "sch\\x65dule" could) has none: it is not parsed."""
    try:
        st = os.stat(path)
    except OSError:
        return False, False
    signature = (st.st_ino, st.st_size, st.st_mtime_ns)
    known = _SCANNED.get(path)
    if known is not None and known[0] == signature:
        return known[1], known[2]
    try:
        with open(path, "rb") as fh:
            raw = fh.read(loader.MAX_MANIFEST_BYTES + 1)
    except OSError:
        return True, False  # let loading it say what is wrong
    found = (b"schedule" in raw or b"\\" in raw, bool(_DECLARES.search(raw)))
    if len(_SCANNED) > 4096:
        _SCANNED.clear()
    _SCANNED[path] = (signature, *found)
    return found


def scheduled(engine: Engine) -> tuple[list[Workflow], list[tuple[str, WfrunError]]]:
    """The workflows of the workflows directory that have a schedule, and the manifests with
    a top-level `schedule:` line that cannot be loaded (path, error)."""
    found: list[Workflow] = []
    broken: list[tuple[str, WfrunError]] = []
    for path in loader.discover(engine.workflows_dir):
        may, declares = _scan(path)
        if not may:
            continue
        try:
            workflow = loader.load_workflow(path, check_code=False, cache=engine.manifests)
        except WfrunError as exc:
            if declares:
                broken.append((path, exc))
            continue
        if workflow.schedule is not None:
            found.append(workflow)
    return found, broken


def any_schedule(engine: Engine) -> bool:
    """True if some workflow of the workflows directory has a schedule (or means to)."""
    found, broken = scheduled(engine)
    return bool(found or broken)


def schedule_names(engine: Engine) -> list[str]:
    """The names of the workflows of the workflows directory whose schedule loads, sorted."""
    return sorted({workflow.name for workflow in scheduled(engine)[0]})


# -- tick ----------------------------------------------------------------------------------------

def fire(engine: Engine, report: TickReport, only: Collection[str] | None = None) -> None:
    """Start the runs the scheduled workflows (those named in `only`, if given) are owed at
    the engine's `now` (called by tick, after the due runs; adds to `report`)."""
    workflows, broken = scheduled(engine)
    if only is not None:
        workflows = [w for w in workflows if w.name in only]
        broken = [(path, exc) for path, exc in broken if loader.stated_name(path) in only]
    for path, exc in broken:
        _error(report, loader.stated_name(path), f"{exc.message} (its schedule cannot fire "
                                                 "until this is fixed)")
    workflows, shared = shared_names(workflows)  # one state, one run id: none of them fires
    for name, exc in shared.items():
        _error(report, name, exc.message)
    for workflow in workflows:
        if engine.should_stop():
            break
        try:
            _fire(engine, workflow, report)
        except WfrunError as exc:
            _error(report, workflow.name, exc.message)
        except Exception as exc:  # a bug must not stop the other schedules
            import logging

            logging.getLogger("wfrun.engine").exception("internal error in the schedule of %s",
                                                        workflow.name)
            _error(report, workflow.name, f"internal error: {type(exc).__name__}: {exc}")
    engine.manifests.flush()


def _error(report: TickReport, workflow: str, message: str) -> None:
    """A schedule's error in tick's report: `{"run_id": null, "workflow", "message"}`."""
    report.errors.append(cast(dict[str, str], {"run_id": None, "workflow": workflow,
                                               "message": message}))


def _fire(engine: Engine, workflow: Workflow, report: TickReport) -> None:
    schedule = workflow.schedule
    assert schedule is not None
    now = engine.clock.now()
    state, revision = read_state(engine.store, workflow.name)
    if state is not None and state.get("paused"):
        return
    if state is not None and state.get("timetable") == schedule.describe() \
            and isinstance(state.get("next_fire"), str) and now < parse_iso(state["next_fire"]):
        return  # the usual tick: nothing due, and no cron library imported to know it
    timetable = timetable_of(workflow)
    mine = dict(state or {})
    # A schedule whose timetable changed is a new one: the times the old one was caught up
    # to say nothing of the new one's, and none of its fire times was missed.
    known = state is not None and state.get("timetable") in (None, schedule.describe())
    through = parse_iso(mine["through"]) if mine.get("through") and known else now - GRACE
    if known and schedule.catchup == "all":
        fires = timetable.between(through, now, CATCHUP_ALL_PER_TICK + 1)
        if len(fires) > CATCHUP_ALL_PER_TICK:
            fires = fires[:CATCHUP_ALL_PER_TICK]
            report.warnings.append(
                f"schedule of workflow '{workflow.name}': over {CATCHUP_ALL_PER_TICK} fire times "
                f"were missed; this tick started runs for the {CATCHUP_ALL_PER_TICK} oldest (up "
                f"to {to_iso(fires[-1])}), the next ticks start the others (catchup: all)")
        handled = fires
    else:
        latest = timetable.latest(through, now)
        handled = [latest] if latest is not None else []
        # (a new schedule counts as `catchup: none`: only what is due now, once)
        on_time = latest is not None and (
            (known and schedule.catchup != "none") or now - latest <= GRACE)
        fires = handled if on_time else []
    for when in handled:
        if when in fires:
            try:
                revision = _start(engine, workflow, timetable, when, mine, revision, report)
            except WfrunError as exc:  # not handled: the next tick tries this fire time again
                _error(report, workflow.name, f"schedule of workflow '{workflow.name}' could "
                       f"not start run {run_id_for(workflow.name, when, timetable)} (fire time "
                       f"{to_iso(when)}): {exc.message}")
                break
        through = max(through, when)
    mine["through"] = to_iso(through)
    mine["next_fire"] = to_iso(timetable.next_after(through))
    mine["timetable"] = schedule.describe()
    _save(engine, workflow.name, mine, revision, timetable)


def _start(engine: Engine, workflow: Workflow, timetable: Timetable, when: datetime,
           state: dict[str, Any], revision: int, report: TickReport) -> int:
    """Start the run of fire time `when` (unless `overlap` says not to), recording it in
    `state`; a run that exists already (another tick started it) counts as started. Returns
    the schedule state's revision.

    The fire is claimed before its run executes: the state naming the new run as the last one
    is saved at the revision this tick read, so a tick overlapping this one (a slow run and
    the next fire time) sees that run and applies `overlap` to it; a tick that saved first
    makes this one decide again on what it saved."""
    schedule = workflow.schedule
    assert schedule is not None
    run_id = run_id_for(workflow.name, when, timetable)
    if engine.store.exists(run_id):
        state.update(last_fire=to_iso(when), last_run=run_id)
        return revision
    for _ in range(SAVE_ATTEMPTS):
        previous = state.get("last_run")
        last_fire = state.get("last_fire")
        if previous and previous != run_id and schedule.overlap != "allow" \
                and last_fire and parse_iso(last_fire) > when:
            # a tick ahead of this one started a later fire time's run: an earlier one would
            # only run beside it (skip) or be cancelled by nobody after it (cancel_previous)
            state["last_skip"] = {"fire": to_iso(when), "run_id": previous, "reason": (
                f"run {previous} of a later fire time was started (overlap: "
                f"{schedule.overlap})")}
            return revision
        if previous and previous != run_id and schedule.overlap != "allow":
            status = _previous_status(engine, previous)
            if status is not None and status not in FINISHED and status != "unreadable":
                if schedule.overlap == "skip":
                    state["last_skip"] = {"fire": to_iso(when), "run_id": previous, "reason":
                                          f"run {previous} was {status} (overlap: skip)"}
                    return revision
                with contextlib.suppress(ConflictError):  # it finished meanwhile
                    engine.cancel(previous, reason=f"the schedule started run {run_id} "
                                                   "(overlap: cancel_previous)")
        claimed = {**state, "last_fire": to_iso(when), "last_run": run_id}
        try:
            revision = engine.store.save_schedule_state(workflow.name, claimed, revision)
            break
        except ConflictError:
            theirs, revision = read_state(engine.store, workflow.name)
            merged = _merge(theirs or {}, state, timetable)
            state.clear()
            state.update(merged)
    else:
        raise ConflictError(f"the schedule state of workflow '{workflow.name}' kept changing "
                            "under this tick; the next tick goes on")
    state.update(last_fire=to_iso(when), last_run=run_id)
    try:
        result = engine.start(workflow.path, input=copy.deepcopy(schedule.input), run_id=run_id)
    except LeftoverRecords as exc:  # not started by anyone: said, as a run tick cannot advance
        report.errors.append({"run_id": run_id, "message": exc.message})
        return revision
    except ConflictError:  # another process is starting it right now (or did, differently)
        return revision
    if f"run {run_id} already exists; showing it unchanged" in result.warnings:
        return revision  # created by another tick between the check above and this start
    report.warnings.extend(result.warnings)
    report.advanced.append({"run_id": run_id, "step": None, "reason": REASON,
                            "status": result.run.status})
    return revision


def _previous_status(engine: Engine, run_id: str) -> str | None:
    """`run_status` of the schedule's previous run. A fire time is claimed before its run is
    created (`_start`): a claimed run that does not exist yet is most likely being started by
    a tick that overlaps this one, so it is looked for again for a moment (`CLAIM_WAIT`) before
    it counts as none (its start failed, or it was pruned)."""
    status = run_status(engine, run_id)
    deadline = time.monotonic() + CLAIM_WAIT_SECONDS
    while status is None and time.monotonic() < deadline:
        time.sleep(0.05)
        status = run_status(engine, run_id)
    return status


def run_status(engine: Engine, run_id: str) -> str | None:
    """The status of a run; None if it is gone, `unreadable` if it cannot be read."""
    try:
        return engine.store.load(run_id).status
    except NotFoundError:
        return None
    except (StateError, WfrunError):
        return "unreadable"


def _save(engine: Engine, name: str, mine: dict[str, Any], revision: int,
          timetable: Timetable) -> None:
    """Save `mine` over the state read at `revision`; if another process saved meanwhile,
    merge (the later `through` and last run win; its pause or unpause stands) and try again."""
    for _ in range(SAVE_ATTEMPTS):
        try:
            engine.store.save_schedule_state(name, mine, revision)
            return
        except ConflictError:
            theirs, revision = read_state(engine.store, name)
            mine = _merge(theirs or {}, mine, timetable)
    raise ConflictError(f"the schedule state of workflow '{name}' kept changing under this "
                        "tick; the next tick goes on")


def _merge(theirs: dict[str, Any], mine: dict[str, Any], timetable: Timetable) -> dict[str, Any]:
    """Another process's state with what this tick did: the later `through`, last run and
    last skip win; its `paused` stands."""
    merged = dict(theirs)
    if _later(mine.get("through"), theirs.get("through")):
        merged["through"] = mine["through"]
    if _later(mine.get("last_fire"), theirs.get("last_fire")):
        merged.update(last_fire=mine["last_fire"], last_run=mine.get("last_run"))
    if _later((mine.get("last_skip") or {}).get("fire"), (theirs.get("last_skip") or {}).get("fire")):
        merged["last_skip"] = mine["last_skip"]
    if merged.get("through"):
        merged["next_fire"] = to_iso(timetable.next_after(parse_iso(merged["through"])))
    else:  # only claims were saved yet (the first ticks of a new schedule): `_fire` sets it
        merged.pop("next_fire", None)
    merged["timetable"] = timetable.schedule.describe()
    return merged


def _later(ours: Any, theirs: Any) -> bool:
    """True if the time `ours` is set and after `theirs` (or `theirs` is not set)."""
    return bool(ours) and (not theirs or parse_iso(ours) > parse_iso(theirs))


def run_id_for(name: str, when: datetime, timetable: Timetable) -> str:
    """The id of the run a schedule starts for fire time `when`: `sched-NAME-STAMP`, at most
    64 characters (a long name is shortened, with a hash of the whole name)."""
    stamp = when.astimezone(UTC).strftime(
        "%Y%m%dT%H%M%SZ" if timetable.by_the_second else "%Y%m%dT%H%MZ")
    room = 64 - len("sched--") - len(stamp)
    if len(name) > room:
        name = f"{name[:room - 9]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"
    return f"sched-{name}-{stamp}"


def timetable_of(workflow: Workflow) -> Timetable:
    """The fire times of a scheduled workflow's `schedule:`."""
    from wfrun._firetimes import Timetable  # imports croniter and zoneinfo

    assert workflow.schedule is not None
    return Timetable(workflow.schedule, workflow.path)

