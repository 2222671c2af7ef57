"""Read-only questions across runs: the run list, the open suspensions, a step's log records."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfrun._specs import Workflow
from wfrun.errors import NotFoundError, WfrunError
from wfrun.model import RUNNING, SUSPENDED, WAITING, Run
from wfrun.store.abc import Store
from wfrun.store.queries import RunSummary

from ._ask import expected_schema
from ._composite import has_composites, label
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


def log_filter(run: Run, step: str | None) -> Callable[[dict[str, Any]], bool]:
    """Which `wfrun logs` records `--step STEP` keeps: a step's, with its foreach iterations'
    (`STEP[INDEX]`), or one iteration's; NotFoundError for a step or iteration the run lacks."""
    if step is None:
        return lambda record: True
    match = _ITERATION.fullmatch(step)
    sid = match.group(1) if match else step
    state = run.steps.get(sid)
    if state is None:
        raise NotFoundError(
            f"run {run.run_id} has no step '{sid}' (steps: {', '.join(run.steps) or 'none'})")
    if match is None:  # the step's own records and its iterations' (a step id has no '[')
        prefix = f"{step}["
        return lambda record: (str(record.get("step")) == step
                               or str(record.get("step")).startswith(prefix))
    index, count = int(match.group(2)), len(state.iterations or ())
    if index >= count:
        has = (f"it has {count} iteration{'s' * (count != 1)} ({label(sid, 0)} to "
               f"{label(sid, count - 1)})" if count
               else "it has no iterations (it is not a foreach step, or has not run yet)"
               if state.iterations is None else "it has no iterations (its list was empty)")
        raise NotFoundError(f"run {run.run_id} has no iteration '{step}' of step '{sid}': {has}")
    wanted = label(sid, index)
    return lambda record: record.get("step") == wanted
