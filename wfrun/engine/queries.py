"""Read-only questions across runs: the run list and the open suspensions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfrun._specs import Workflow
from wfrun.errors import WfrunError
from wfrun.model import Run
from wfrun.store.abc import Store

from ._ask import expected_schema
from ._composite import has_composites
from ._document import ask_number, summary, suspended_entries
from ._tree import entries

if TYPE_CHECKING:
    from .core import Engine


def _readable_runs(store: Store) -> tuple[list[Run], list[str]]:
    runs: list[Run] = []
    problems: list[str] = []
    for item in store.iter_runs():
        if isinstance(item, Run):
            runs.append(item)
        else:
            problems.append(str(item))
    runs.sort(key=lambda r: (r.created_at, r.run_id), reverse=True)
    return runs, problems


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

    Only the rows shown are built into summaries (every snapshot is still read: an index of
    runs by creation time is the store's to add)."""
    runs, problems = _readable_runs(store)
    matching = [
        r for r in runs
        if (children or r.parent is None) and (not statuses or r.status in statuses)
        and (workflow is None or r.workflow == workflow)
    ]
    shown = matching[:limit] if limit is not None else matching
    return [summary(r) for r in shown], len(matching) - len(shown), problems


def pending(engine: Engine, workflow: str | None) -> tuple[list[dict[str, Any]], list[str]]:
    """Every open suspension, oldest first, with the schema its resume data must match.

    A suspension inside a child run is listed once, under its top-level run, by full path;
    `workflow` keeps the suspensions of runs of that workflow, child runs' included."""
    runs, problems = _readable_runs(engine.store)
    workflow_of = {r.run_id: r.workflow for r in runs}
    cache: dict[str, Workflow | None] = {}
    rows: list[dict[str, Any]] = []
    for run in runs:
        if run.finished or (workflow is not None and run.workflow != workflow
                            and not has_composites(run)):
            continue
        if not any(s.status == "suspended" for s in run.steps.values()) \
                and not has_composites(run):
            continue
        if run.parent is not None and run.parent.get("run_id") in workflow_of:
            continue  # listed under its parent
        if run.manifest_path not in cache:
            try:
                cache[run.manifest_path] = engine.workflow_of(run, [])
            except WfrunError:
                cache[run.manifest_path] = None
        current = cache[run.manifest_path]
        if has_composites(run):
            found = entries(engine, run, current)
            listed = list(zip(found.suspended, found.schemas, strict=True))
        else:
            listed = [(e, expected_schema(run.steps.get(e["step"]),
                                          current.steps.get(e["step"]) if current else None))
                      for e in suspended_entries(run, current, engine.links)]
        for entry, schema in listed:
            if workflow is not None and workflow not in (
                    run.workflow, workflow_of.get(entry.get("child_run_id", ""))):
                continue  # neither this run nor the child run suspended there is of `workflow`
            rows.append({
                "run_id": run.run_id, "workflow": run.workflow, "step": entry["step"],
                "path": entry["path"], "since": entry["since"], "deadline": entry["deadline"],
                "on_timeout": entry["on_timeout"], "suspend_data": entry["suspend_data"],
                "resume_schema": schema, "label": entry["label"],
                "resume_command": entry["resume_command"],
                **ask_number(entry),
            })
    rows.sort(key=lambda r: (r["since"], r["run_id"]))
    return rows, problems
