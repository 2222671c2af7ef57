"""Commands about runs: start, resume, cancel, show, list, pending."""

from __future__ import annotations

from typing import Annotated

import typer

from wfrun.errors import UsageError

from . import _complete, _input
from ._app import JsonOpt, app, emit_json, finish_run, handle_errors, settings


@app.command()
@handle_errors
def start(
    workflow: Annotated[str, typer.Argument(
        help="Workflow name or manifest path.", autocompletion=_complete.workflow_names)],
    input: Annotated[str | None, typer.Option("--input", "-i",
                                              help="Run input: JSON, @file or - (stdin).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Use this run id (idempotent start).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a run and execute it until it completes, fails or pauses.

    Example: wfrun start expense-approval --input '{"user": "ann", "amount": 42}'
    """
    given, data = _input.read_payload(input, "--input")
    engine = settings().engine()
    result = engine.start(workflow, data, run_id) if given else engine.start(workflow, run_id=run_id)
    finish_run(engine, result, as_json)


@app.command()
@handle_errors
def resume(
    run_id: Annotated[str, typer.Argument(
        help="The run to resume.", autocompletion=_complete.run_ids)],
    data: Annotated[str | None, typer.Option("--data", "-d",
                                             help="Resume data: JSON, @file or -.")] = None,
    step: Annotated[str | None, typer.Option(help="The step to resume (if several wait).",
                                             autocompletion=_complete.waiting_steps)] = None,
    action: Annotated[str | None, typer.Option(help="Set the step's action (for when:).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Hand data to a suspended step (or rerun a rerun-pending one now) and continue.

    Example: wfrun resume RUN --step manager-approval --action approved --data '{"approved": true}'
    """
    from wfrun.ids import check_run_id

    check_run_id(run_id)
    if action is not None and not (0 < len(action) <= 100):
        raise UsageError("--action must be 1 to 100 characters")
    _input.check_text(action, "--action")
    _, payload = _input.read_payload(data, "--data")
    engine = settings().engine()
    finish_run(engine, engine.resume(run_id, payload, step, action), as_json)


@app.command()
@handle_errors
def cancel(
    run_id: Annotated[str, typer.Argument(
        help="The run to cancel.", autocompletion=_complete.run_ids)],
    reason: Annotated[str | None, typer.Option(help="Why (kept in history).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Cancel a run that has not finished; its timers are dropped.

    Example: wfrun cancel RUN --reason "duplicate request"
    """
    _input.check_text(reason, "--reason")
    engine = settings().engine()
    finish_run(engine, engine.cancel(run_id, reason), as_json)


@app.command()
@handle_errors
def show(
    run_id: Annotated[str, typer.Argument(
        help="The run to show.", autocompletion=_complete.run_ids)],
    as_json: JsonOpt = False,
) -> None:
    """Show one run: steps, outputs, what it waits for, and its history.

    Example: wfrun show RUN --json | jq .status
    """
    engine = settings().engine()
    result = engine.get(run_id)
    doc = engine.document(result, history=True)
    if as_json:
        emit_json(doc)
        return
    from . import _render

    _render.warnings(doc["warnings"])
    _render.run(doc)
    _render.timeline(doc["history"])


@app.command("list")
@handle_errors
def list_runs(
    status: Annotated[list[str] | None, typer.Option(help="Only runs with this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="At most this many.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """List runs, newest first.

    Example: wfrun list --status suspended --workflow expense-approval
    """
    from wfrun.engine import queries
    from wfrun.model import RUN_STATUSES

    for value in status or []:
        if value not in RUN_STATUSES:
            raise UsageError(f"--status {value!r} is not one of {', '.join(RUN_STATUSES)}")
    engine = settings().engine()
    rows, problems = queries.list_runs(engine.store, status or None, workflow, limit)
    from . import _render

    _render.problems(problems)
    if as_json:
        emit_json(rows)
    else:
        _render.table(
            ["run", "workflow", "status", "created", "next due"],
            [[r["run_id"], r["workflow"], r["status"], r["created_at"], r["next_due"] or ""]
             for r in rows],
            "no runs", whole=(0, 2, 4),
        )
    if problems:
        raise typer.Exit(5)


@app.command()
@handle_errors
def pending(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's suspensions.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every open suspension across all runs, with how to resume it.

    Example: wfrun pending --workflow expense-approval --json
    """
    from wfrun.engine import queries

    engine = settings().engine()
    rows, problems = queries.pending(engine, workflow)
    from . import _render

    _render.problems(problems)
    if as_json:
        emit_json(rows)
    else:
        _render.suspensions(rows)
    if problems:
        raise typer.Exit(5)

