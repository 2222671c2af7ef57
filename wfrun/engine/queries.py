"""Read-only questions across runs: the run list, the open suspensions, a step's log records."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfrun._specs import Workflow
from wfrun.errors import NotFoundError, UsageError, WfrunError
from wfrun.model import RUNNING, SUSPENDED, WAITING, Run, StepState
from wfrun.store.abc import Store
from wfrun.store.queries import RunSummary

from ._ask import expected_schema
from ._composite import has_composites, label, node
from ._document import ask_number, suspended_entries
from ._tree import MAX_DEPTH, entries

if TYPE_CHECKING:
    from .core import Engine


def row(run: RunSummary) -> dict[str, Any]:
    """A `list --json` entry (SPEC §4)."""
    return {
        "run_id": run.run_id, "workflow": run.workflow, "status": run.status,
        "created_at": run.created_at, "updated_at": run.updated_at, "next_due": run.next_due,
    }


def list_runs(
    store: Store, statuses: list[str] | None, workflow: str | None, limit: int | None
) -> tuple[list[dict[str, Any]], list[str]]:
    """Runs newest first, filtered, child runs included; plus one message per snapshot that
    could not be read."""
    rows, _, problems = page_of_runs(store, statuses, workflow, limit, children=True)
    return rows, problems


def page_of_runs(
    store: Store, statuses: list[str] | None, workflow: str | None, limit: int | None,
    *, children: bool = False,
) -> tuple[list[dict[str, Any]], int, list[str]]:
    """The newest `limit` runs (all if None) that match, top-level runs only unless
    `children`; how many more match; one message per snapshot that could not be read.

    Answered by the store (`Store.find_runs`: from an index, in the file store)."""
    page = store.find_runs(statuses or None, workflow, top_level=not children, limit=limit)
    rows = [row(r) for r in page.runs]
    waiting_below = [entry for entry in rows
                     if entry["next_due"] is None and entry["status"] in (SUSPENDED, WAITING)]
    if waiting_below:  # a run waiting on a child run is due when the child is: say when
        dues = _dues_below(store)
        for entry in waiting_below:
            entry["next_due"] = dues.get(entry["run_id"])
    return rows, page.more, [str(p) for p in page.problems]


def _dues_below(store: Store) -> dict[str, str]:
    """For each run with child runs not finished, the earliest timer or deadline among them
    (and theirs): from the run index, as `list` itself, reading no snapshot."""
    below = store.find_runs([SUSPENDED, WAITING, RUNNING], None, top_level=False, limit=None)
    parent_of = {summary.run_id: summary.parent for summary in below.runs}
    dues: dict[str, str] = {}
    for summary in below.runs:
        due, above = summary.next_due, summary.parent
        for _ in range(MAX_DEPTH):
            if due is None or above is None:
                break
            if above not in dues or due < dues[above]:
                dues[above] = due
            above = parent_of.get(above)
    return dues


def pending(engine: Engine, workflow: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every open suspension, oldest first, with the schema its resume data must match.

    A suspension inside a child run is listed once, under its top-level run, by full path;
    `workflow` keeps the suspensions on whose path a run of that workflow is: the top-level
    run, a child run between it and the suspension, or the child run suspended there."""
    found, unreadable = engine.store.pending(workflow)
    problems = [str(p) for p in unreadable]
    known = {r.run_id: r for r in found}
    cache: dict[str, Workflow | None] = {}
    tops: set[str] = set()  # the top-level runs listed (each once, with its child runs)
    rows: list[dict[str, Any]] = []
    for run in [top_of(engine.store, r, known) for r in found]:
        if run.run_id in tops:
            continue
        tops.add(run.run_id)
        if run.finished:
            continue
        if run.manifest_path not in cache:
            try:
                cache[run.manifest_path] = engine.workflow_of(run, [])
            except WfrunError:
                cache[run.manifest_path] = None
        current = cache[run.manifest_path]
        if has_composites(run):
            below = entries(engine, run, current)
            listed = list(zip(below.suspended, below.schemas, strict=True))
        else:
            listed = [(e, e["event_schema"] if "event" in e else expected_schema(
                           run.steps.get(e["step"]), current.steps.get(e["step"]) if current
                           else None))
                      for e in suspended_entries(run, current, engine.links)]
        for entry, schema in listed:
            if workflow is not None and workflow != run.workflow and workflow not in (
                    workflows_above(engine.store, entry.get("child_run_id"), known)):
                continue  # no run on the suspension's path is of `workflow`
            rows.append({
                "run_id": run.run_id, "workflow": run.workflow, "step": entry["step"],
                "path": entry["path"], "since": entry["since"], "deadline": entry["deadline"],
                "on_timeout": entry["on_timeout"], "suspend_data": entry["suspend_data"],
                "resume_schema": schema, "label": entry["label"],
                "resume_command": entry["resume_command"],
                **({"gone": entry["gone"]} if "gone" in entry else {}),
                **ask_number(entry), **({"event": entry["event"]} if "event" in entry else {}),
                **({"approvals": entry["approvals"]} if "approvals" in entry else {}),
            })
    rows.sort(key=lambda r: (r["since"], r["run_id"]))
    return rows, problems


def top_of(store: Store, run: Run, known: dict[str, Run]) -> Run:
    """The top-level run above a child run (`run` itself for a top-level run, or for one whose
    parent cannot be read: it is listed on its own)."""
    for _ in range(MAX_DEPTH):
        parent_id = (run.parent or {}).get("run_id")
        if not isinstance(parent_id, str):
            break
        parent = known.get(parent_id)
        if parent is None:
            try:
                parent = known[parent_id] = store.load(parent_id)
            except WfrunError:
                break
        run = parent
    return run


def workflows_above(store: Store, run_id: str | None, known: dict[str, Run]) -> set[str]:
    """The workflows of the child run a suspension is in and of every run above it (none if
    there is no such run; those of the runs that can be read)."""
    found: set[str] = set()
    for _ in range(MAX_DEPTH + 1):
        if not isinstance(run_id, str) or not run_id:
            break
        if run_id not in known:
            try:
                known[run_id] = store.load(run_id)
            except WfrunError:
                break
        run = known[run_id]
        found.add(run.workflow)
        run_id = (run.parent or {}).get("run_id")
    return found


_ITERATION = re.compile(r"(.+)\[(\d{1,9})\]")


class LogScope:
    """What `wfrun logs --step STEP` shows: the records of `run` (the run asked about, or the
    child run a `PARENT-STEP/CHILD-STEP` path leads to) that `keep` keeps, each named by its
    address from the run asked about (`above`: the path to `run`, "" for that run itself)."""

    __slots__ = ("above", "keep", "run")

    def __init__(self, run: Run, keep: Callable[[dict[str, Any]], bool], above: str = "") -> None:
        self.run = run
        self.keep = keep
        self.above = above

    def shown(self, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The records kept, a child run's named from the run asked about (`review/approve`)."""
        if not self.above:
            return [r for r in records if self.keep(r)]
        return [{**r, "step": f"{self.above}/{r.get('step')}"} for r in records if self.keep(r)]


def log_scope(store: Store, run: Run, step: str | None) -> LogScope:
    """Where `wfrun logs --step STEP` finds its records: `log_filter` of the run, or for a
    path into a child run (`review/approve`, `each[1]/approve`, as `resume` takes them) the
    child run's records of that step; UsageError for an empty or malformed `step`,
    NotFoundError for a step, iteration or child run that the path does not lead to."""
    if step == "":
        raise UsageError("--step '' names no step: give a step id (STEP), a foreach iteration "
                         "(STEP[INDEX]) or a step of a child run (PARENT-STEP/CHILD-STEP), or "
                         "leave --step out for every step's output")
    if step is None or "/" not in step:
        return LogScope(run, log_filter(run, step))
    from ._address import parse
    from ._child_runs import unrecorded_child

    *path, last = parse(step)
    above: list[str] = []
    for segment in path:
        state = _step_of(run, segment.step)
        if segment.index is None and state.iterations is not None:
            raise UsageError(f"step '{segment.step}' of run {run.run_id} is a foreach step: "
                             f"name one iteration's child run ({segment.step}[INDEX]/...)")
        if segment.index is not None:
            _check_iteration(run, segment.step, segment.index)
        it = node(run, segment.step, segment.index)
        child = it.child or (unrecorded_child(store, run.run_id, segment.step, segment.index)
                             if it.status == RUNNING else None)
        if not child:
            raise NotFoundError(f"step '{segment}' of run {run.run_id} has no child run to "
                                "address with '/' (it is not a workflow: step, or has not "
                                "started one yet)")
        run = store.load(child)
        above.append(str(segment))
    return LogScope(run, log_filter(run, str(last)), "/".join(above))


def nothing_logged(run: Run, step: str) -> str:
    """What `wfrun logs --step STEP` says when the step (or iteration) has no records: for a
    `workflow:` step, where its child run's output is found."""
    said = f"step '{step}' of run {run.run_id} ({run.status}) has no output yet"
    match = _ITERATION.fullmatch(step)
    state = run.steps.get(match.group(1) if match else step)
    if state is None:
        return said
    if match is not None:
        nodes, where = (state.iterations or [])[int(match.group(2)):][:1], f"{step}/STEP"
    elif state.iterations is not None:
        nodes, where = state.iterations, f"{step}[INDEX]/STEP"
    else:
        nodes, where = [state], f"{step}/STEP"
    if any(it.child for it in nodes):
        said += f"; the steps of its child run print their own (--step {where})"
    return said


def _step_of(run: Run, sid: str) -> StepState:
    state = run.steps.get(sid)
    if state is None:
        raise NotFoundError(
            f"run {run.run_id} has no step '{sid}' (steps: {', '.join(run.steps) or 'none'})")
    return state


def _check_iteration(run: Run, sid: str, index: int) -> None:
    """NotFoundError unless step `sid` of the run has an iteration `index`."""
    state = run.steps[sid]
    count = len(state.iterations or ())
    if index >= count:
        has = (f"it has {count} iteration{'s' * (count != 1)} ({label(sid, 0)} to "
               f"{label(sid, count - 1)})" if count
               else "it has no iterations (it is not a foreach step, or has not run yet)"
               if state.iterations is None else "it has no iterations (its list was empty)")
        raise NotFoundError(f"run {run.run_id} has no iteration '{label(sid, index)}' of step "
                            f"'{sid}': {has}")


def log_filter(run: Run, step: str | None) -> Callable[[dict[str, Any]], bool]:
    """Which `wfrun logs` records `--step STEP` keeps: a step's, with its foreach iterations'
    (`STEP[INDEX]`), or one iteration's; NotFoundError for a step or iteration the run lacks."""
    if step is None:
        return lambda record: True
    match = _ITERATION.fullmatch(step)
    sid = match.group(1) if match else step
    _step_of(run, sid)
    if match is None:  # the step's own records and its iterations' (a step id has no '[')
        prefix = f"{step}["
        return lambda record: (str(record.get("step")) == step
                               or str(record.get("step")).startswith(prefix))
    index = int(match.group(2))
    _check_iteration(run, sid, index)
    wanted = label(sid, index)
    return lambda record: record.get("step") == wanted
