"""The testing harness: the CLI's engine and file store in a temporary directory, on a fake clock."""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from wfrun._jsoninput import max_payload, parse_json
from wfrun.clock import FakeClock
from wfrun.durations import parse_duration, parse_iso, to_iso
from wfrun.engine import Engine, queries
from wfrun.engine.core import NO_INPUT
from wfrun.errors import NotFoundError, UsageError
from wfrun.model import RUN_STATUSES, Run
from wfrun.store import Store, open_store, store_kind

DEFAULT_START = "2026-01-05T09:00:00Z"  # a Monday morning; every test starts at the same time
# the `type` of each history event the engine writes (docs/state-directory.md, "Event types")
EVENT_TYPES = (
    "started", "step_started", "step_completed", "step_skipped", "step_failed", "suspended",
    "resumed", "sleeping", "rerun_scheduled", "timer_fired", "timed_out", "retried", "recovered",
    "cancelled", "failed", "completed", "log", "forked", "event_sent", "discarded", "accepted",
    "approval", "foreach_started", "child_suspended", "child_waiting", "child_running",
)


class Harness:
    """Start, resume and cancel runs, move time and tick, and read what happened, in a test.

    Every call goes through the same `Engine` over the same `FileStore` as the `wfrun`
    command, so a workflow behaves here exactly as it does from the shell; only the clock is
    fake: it moves when the test says so, never by itself. Methods return the run document
    of `wfrun ... --json` (a dict), and raise the errors of `wfrun.errors` where the command
    would exit non-zero (`ConflictError` for exit 3, `NotFoundError` for 4, `UsageError` for 2,
    also for misuse: data JSON cannot carry, a bad duration, moving the clock back).

    Schedules (`schedule:`, SPEC §11) fire only if the test asks: `schedules=True` fires every
    one as `wfrun tick` does, a list of workflow names fires those; the others' ticks neither
    fire nor report them (nothing is written for them), so a tick reports the test's own runs.
    """

    def __init__(
        self,
        workflows_dir: str | os.PathLike[str],
        state_dir: str | os.PathLike[str],
        *,
        start: datetime | str = DEFAULT_START,
        base_url: str | None = None,
        schedules: bool | Iterable[str] = False,
    ) -> None:
        self.workflows_dir = os.fspath(workflows_dir)
        self.state_dir = os.fspath(state_dir)
        try:
            self.clock = FakeClock(start)
        except ValueError as exc:  # not an ISO-8601 time
            raise UsageError(f"start: {exc}") from None
        self.store = open_store(self.state_dir)  # a directory, or a store URL (--store)
        flag = "--state-dir" if store_kind(self.state_dir) == ("file", self.state_dir) else "--store"
        self.engine = Engine(
            self.store, self.clock, workflows_dir=self.workflows_dir, base_url=base_url,
            command=f"wfrun {flag} {shlex.quote(self.state_dir)}",
        )
        self._fired = self._schedules_option(schedules)  # None: every schedule fires

    def _schedules_option(self, schedules: object) -> frozenset[str] | None:
        """`schedules=` checked (UsageError): the names of the schedules that fire, None for all."""
        if isinstance(schedules, bool):
            return None if schedules else frozenset()
        names = None if isinstance(schedules, str | bytes) or not isinstance(schedules, Iterable) \
            else list(schedules)
        if names is None or not all(isinstance(n, str) for n in names):
            raise UsageError(f"schedules={schedules!r}: give True, False or a list of the names "
                             "of scheduled workflows")
        known = self.engine.schedule_names()
        unknown = [name for name in names if name not in known]
        if unknown:
            raise UsageError(
                f"schedules: no workflow of {self.workflows_dir} named "
                f"{', '.join(map(repr, unknown))} has a schedule (those with one: "
                f"{', '.join(known) or 'none'})")
        return frozenset(names)

    # -- time ----------------------------------------------------------------------------------

    @property
    def now(self) -> datetime:
        """The fake clock's current time (aware, UTC)."""
        return self.clock.now()

    def set_time(self, moment: datetime | str) -> None:
        """Put the clock at `moment` (ISO-8601 text or an aware datetime), not before its
        current time (UsageError); nothing runs."""
        try:
            when = parse_iso(moment)
        except ValueError as exc:
            raise UsageError(f"set_time: {exc}") from None
        if when < self.now:
            raise UsageError(
                f"set_time({to_iso(when)}) would move the clock back from {to_iso(self.now)}; "
                "the fake clock only moves forward (runs' timers and history are already later)")
        self.clock.set(when)

    def advance(self, duration: timedelta | str | float, *, tick: bool = True) -> dict[str, Any]:
        """Move the clock forward by `duration` (`"7d"`, `"1h30m"`, seconds or a timedelta),
        then run `tick` (unless `tick=False`); returns the tick report."""
        if _negative(duration):
            raise UsageError(f"advance({duration!r}) would move the clock back; the fake clock "
                             "only moves forward: give a duration of 0 or more")
        try:
            step = parse_duration(duration)
        except ValueError as exc:
            raise UsageError(f"advance: {exc}") from None
        self.clock.advance(step)
        return self.tick() if tick else {"advanced": [], "errors": []}

    def advance_to_due(self, run_id: str | None = None) -> dict[str, Any]:
        """Move the clock to the next due time, unless it is already past, and tick; returns
        the tick report. Due times: the timers and deadlines of `run_id` and its child runs,
        or else of every run and the next fire time of each schedule that fires (`schedules=`).
        UsageError if nothing is due."""
        runs = _with_children(self.store, self.store.load(run_id)) if run_id else [
            r for r in self.store.iter_runs() if not isinstance(r, Exception)]
        dues = [d for d in (r.next_due() for r in runs) if d]
        if run_id is None:
            dues += self._next_fires()
        if not dues:
            if run_id:
                raise UsageError(f"advance_to_due({run_id!r}): nothing is due: the run and its "
                                 "child runs have no timer and no deadline")
            held = "" if self._fired is None or not self.engine.schedule_names() else (
                " (schedules fire only if the test asks: schedules=True or a list of names)")
            raise UsageError("advance_to_due(): nothing is due: no run has a timer or a "
                             f"deadline, and no schedule fires{held}")
        if min(dues) > to_iso(self.now):
            self.clock.set(min(dues))
        return self.tick()

    def _next_fires(self) -> list[str]:
        """The next fire time of each schedule that fires in this harness (past if overdue)."""
        if self._fired is not None and not self._fired:
            return []
        return [row["next_fire"] for row in self.engine.schedules()
                if row["next_fire"] and not row["paused"] and not row.get("error")
                and (self._fired is None or row["workflow"] in self._fired)]

    def tick(self, limit: int | None = None) -> dict[str, Any]:
        """`wfrun tick` at the fake clock's time: `{"advanced": [...], "errors": [...]}`
        (`limit`: `--limit N`, at most N runs advanced, N of 1 or more)."""
        if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool)
                                  or limit < 1):
            raise UsageError(f"tick(limit={limit!r}): give a whole number of 1 or more (as "
                             "`wfrun tick --limit N`), or None for no limit")
        report = self.engine.tick(limit=limit, schedules=self._fired)
        return {"advanced": report.advanced, "errors": report.errors}

    # -- runs ----------------------------------------------------------------------------------

    def start(self, workflow: str, input: Any = NO_INPUT, *,
              run_id: str | None = None) -> dict[str, Any]:
        """`wfrun start`: create a run and execute it until it completes, fails or pauses
        (without `input` the run's input is `{}`, as without `--input`)."""
        if input is not NO_INPUT:
            input = _as_json(input, "input")
        return self.engine.document(self.engine.start(workflow, input, run_id))

    def resume(
        self, run_id: str, data: Any = None, *, step: str | None = None, action: str | None = None,
        label: str | None = None, approver: str | None = None,
    ) -> dict[str, Any]:
        """`wfrun resume`: hand data to a suspended (or rerun-pending) step and continue (`label`:
        `--label NAME`, the suspension with that label instead of `step`; `approver`: `--as
        NAME`, for a step with `approvals:`)."""
        if label is not None and step is not None:
            raise UsageError("give step= or label=, not both (as --step and --label)")
        return self.engine.document(self.engine.resume(run_id, _as_json(data, "data"), step,
                                                       action, label=label, approver=approver))

    def send(self, run_id: str, event: str, data: Any = None) -> dict[str, Any]:
        """`wfrun send --json`: send an event to a run; a step waiting for it takes it, else the
        run keeps it in its inbox until one waits (SPEC §3). The run document has `"sent":
        {"event", "status", "step"}`: `"taken"` with the step that took it, or `"kept"`."""
        result = self.engine.send(run_id, event, _as_json(data, "data"))
        doc = self.engine.document(result)
        doc["sent"] = {"event": event, "status": result.status, "step": result.step}
        return doc

    def cancel(self, run_id: str, reason: str | None = None) -> dict[str, Any]:
        """`wfrun cancel`: cancel a run that has not finished."""
        return self.engine.document(self.engine.cancel(run_id, reason))

    def show(self, run_id: str) -> dict[str, Any]:
        """`wfrun show --json`: the run document, with `history`."""
        return self.engine.document(self.engine.get(run_id), history=True)

    def history(self, run_id: str, type: str | None = None) -> list[dict[str, Any]]:
        """The run's events, oldest first; only those of `type` (`"timed_out"`, ...) if given
        (UsageError for a type no event has)."""
        if type is not None and type not in EVENT_TYPES:
            raise UsageError(f"history(type={type!r}): no event has this type; the types are "
                             f"{', '.join(EVENT_TYPES)}")
        self.store.load(run_id)  # NotFoundError for an unknown run, as `wfrun show`
        events = self.store.read_history(run_id)
        return [e for e in events if type is None or e.get("type") == type]

    def logs(self, run_id: str, step: str | None = None) -> list[dict[str, Any]]:
        """`wfrun logs --json`: what the run's steps printed and logged, oldest first (`step`:
        as `--step`, a foreach step's iterations included, `STEP[INDEX]` for one, or
        `PARENT-STEP/CHILD-STEP` for a step of a child run)."""
        scope = queries.log_scope(self.store, self.store.load(run_id), step)
        records, _ = self.store.read_logs(scope.run.run_id)
        return scope.shown(records)

    def output(self, run_id: str, step: str | None = None) -> str:
        """The text of `logs()`, one line per record (what a step printed or logged)."""
        return "".join(f"{r.get('text', '')}\n" for r in self.logs(run_id, step))

    def pending(self, workflow: str | None = None) -> list[dict[str, Any]]:
        """`wfrun pending --json`: every open suspension."""
        rows, _ = queries.pending(self.engine, workflow)
        return rows

    def runs(self, status: str | None = None, workflow: str | None = None) -> list[dict[str, Any]]:
        """`wfrun list --json --children`: runs newest first, optionally of one status (UsageError
        for one no run has, as `--status`) or workflow."""
        if status is not None and status not in RUN_STATUSES:
            raise UsageError(f"runs(status={status!r}): not one of {', '.join(RUN_STATUSES)}")
        rows, _ = queries.list_runs(self.store, [status] if status else None, workflow, None)
        return rows

    def __repr__(self) -> str:
        return f"<Harness workflows={self.workflows_dir} state={self.state_dir} now={to_iso(self.now)}>"


def _negative(duration: object) -> bool:
    """Whether `duration` would move a clock back: `"-1h"`, a negative number or timedelta."""
    if isinstance(duration, str):
        return duration.strip().startswith("-")
    if isinstance(duration, timedelta):
        return duration < timedelta(0)
    return isinstance(duration, int | float) and not isinstance(duration, bool) and duration < 0


def _as_json(value: Any, option: str) -> Any:
    """`value` as the command would read it from JSON text (`--input`, `--data`): UsageError,
    as there, for what JSON cannot carry (a set, NaN, a lone surrogate) or a payload too large."""
    try:
        raw = json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except TypeError as exc:  # a set, bytes, an object: "Object of type set is not ..."
        raise UsageError(f"{option} is not JSON: {exc}; pass dicts, lists, strings, numbers, "
                         "booleans and None") from None
    except UnicodeEncodeError:
        raise UsageError(f"{option} has a lone surrogate (\\ud800-\\udfff) in a string, which "
                         "is not text; pass valid Unicode") from None
    except ValueError as exc:  # NaN, Infinity (allow_nan=False), a circular reference
        if "ircular" in str(exc):
            raise UsageError(f"{option} is not JSON: it contains itself (a circular "
                             "reference)") from None
        raise UsageError(f"{option} is not acceptable JSON: NaN and Infinity are not valid "
                         "JSON numbers") from None
    except RecursionError:
        raise UsageError(f"{option} is nested too deeply to be accepted") from None
    limit = max_payload()
    if len(raw) > limit:
        raise UsageError(f"{option} is over the {limit} byte limit; pass less data or raise "
                         "WFRUN_MAX_PAYLOAD")
    return parse_json(raw, option)


def _with_children(store: Store, run: Run) -> list[Run]:
    """The run and its child runs, theirs included (their timers are the run's too)."""
    found, queue = [run], [run]
    while queue:
        for step in queue.pop().steps.values():
            for state in [step, *(step.iterations or ())]:
                if state.child and len(found) < 10_000:
                    try:
                        child = store.load(state.child)
                    except NotFoundError:
                        continue
                    found.append(child)
                    queue.append(child)
    return found
