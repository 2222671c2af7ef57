"""`wfrun prune`: delete old finished runs, so that a state directory fed by cron stays bounded."""

import re
from typing import Annotated

import typer

from wfrun.errors import UsageError

from ._app import JsonOpt, app, emit_json, handle_errors, said_missing_state_dir
from ._settings import settings


@app.command()
@handle_errors
def prune(
    older_than: Annotated[str, typer.Option(
        "--older-than", help="Delete finished runs last changed longer ago than this, with a unit: "
        "30d, 12h, 90m.")],
    status: Annotated[list[str] | None, typer.Option(
        help="Only runs with this status: completed, failed or cancelled.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    dry_run: Annotated[bool, typer.Option(
        "--dry-run", help="List what would be deleted; delete nothing.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Delete finished runs older than a cutoff, with their child runs, history and logs.

    A run that is not finished (or has a child run that is not) is never deleted, nor is a child
    run while its parent is kept. Exits 3 if a run changed or was busy meanwhile (it is kept),
    5 if a snapshot could not be read.

    Example: wfrun prune --older-than 30d --status completed
    """
    from wfrun.durations import parse_duration
    from wfrun.engine.prune import PruneReport, cutoff
    from wfrun.engine.prune import prune as prune_runs
    from wfrun.model import FINISHED

    if _is_number(older_than):  # 30 seconds or 30 days? The command line says which.
        number = older_than.strip()
        raise UsageError(f"--older-than {number}: give a unit, e.g. {number}d for days "
                         f"({number}h hours, {number}m minutes, {number}s seconds)")
    try:
        age = parse_duration(older_than)
    except ValueError as exc:
        raise UsageError(f"--older-than: {exc}") from None
    for value in status or []:
        if value not in FINISHED:
            raise UsageError(f"--status {value!r}: only finished runs are pruned "
                             f"({', '.join(sorted(FINISHED))})")
    engine = settings().engine()
    if said_missing_state_dir():  # no run to prune there (and nothing is made)
        report = PruneReport(cutoff(engine, age))
    else:
        report = prune_runs(engine, age, status or FINISHED, workflow, dry_run)
    from . import _render

    _render.problems([*report.unreadable, *(f"run {e['run_id']} was kept: {e['message']}"
                                            for e in report.errors)])
    if as_json:
        emit_json({"cutoff": report.cutoff, "dry_run": dry_run, "runs": report.runs,
                   "errors": report.errors})
    else:
        verb = "would delete" if dry_run else "deleted"
        _render.table(["run", "workflow", "status", "updated"],
                      [[r["run_id"], r["workflow"], r["status"], r["updated_at"]]
                       for r in report.runs],
                      f"no finished run last changed before {report.cutoff}", whole=(0, 3))
        if report.runs:
            _render.lines([f"{verb} {len(report.runs)} run(s) last changed before "
                           f"{report.cutoff}"])
    if report.unreadable:
        raise typer.Exit(5)
    if report.errors:
        raise typer.Exit(3)


def _is_number(text: str) -> bool:
    """A bare number such as `30` or `1.5` (no unit)."""
    return re.fullmatch(r"\s*\d+(\.\d*)?\s*", text) is not None
