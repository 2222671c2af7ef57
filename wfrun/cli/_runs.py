"""Commands about runs: start, resume, cancel, show, list, pending."""

import sys
from typing import Annotated, Any

import typer

from wfrun.errors import NotFoundError, StoreMissing, UsageError
from wfrun.ids import check_run_id, new_run_id

from . import _complete, _input
from ._app import (
    JsonOpt,
    VerboseOpt,
    app,
    echo_steps,
    emit_json,
    executing,
    finish_run,
    handle_errors,
    said_missing_state_dir,
)
from ._settings import settings


@app.command()
@handle_errors
def start(
    workflow: Annotated[str, typer.Argument(
        help="Workflow name or manifest path.", autocompletion=_complete.workflow_names)],
    input: Annotated[str | None, typer.Option("--input", "-i",
                                              help="Run input: JSON, @file or - (stdin).")] = None,
    run_id: Annotated[str | None, typer.Option(help="Use this run id (idempotent start).")] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Create a run and execute it until it completes, fails or pauses.

    Example: wfrun start expense-approval --input '{"user": "ann", "amount": 42}'
    """
    echo_steps(verbose)
    given, data = _input.read_payload(input, "--input")
    engine = settings().engine()
    if run_id is None:  # made here, so that an interruption can name the run
        run_id = new_run_id(engine.clock.now())
    executing(engine, run_id)
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
    label: Annotated[str | None, typer.Option(
        help="Resume the suspension with this label (instead of --step).")] = None,
    approver: Annotated[str | None, typer.Option(
        "--as", help="Decide as this approver (a step with approvals:).")] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Hand data to a suspended step (or rerun a rerun-pending one now) and continue.

    Example: wfrun resume RUN --step manager-approval --action approved --data '{"approved": true}'
    """
    echo_steps(verbose)
    check_run_id(run_id)
    if action is not None and not (0 < len(action) <= 100):
        raise UsageError("--action must be 1 to 100 characters")
    _input.check_text(action, "--action")
    _input.check_text(label, "--label")
    _input.check_text(approver, "--as")
    _, payload = _input.read_payload(data, "--data")
    engine = settings().engine()
    executing(engine, run_id)
    if label is not None and step is not None:
        raise UsageError("give --step or --label, not both")
    # --label: the suspension's address, wherever it is (a child run included)
    finish_run(engine, engine.resume(run_id, payload, step, action, label=label,
                                     approver=approver), as_json, step=step or label)


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
    missing = settings().missing_state_dir()
    if missing:
        check_run_id(run_id)
        raise NotFoundError(f"no run {run_id}: the {missing}")
    result = engine.get(run_id)
    doc = engine.document(result, history=True)
    if as_json:
        emit_json(doc)
        return
    from . import _render

    _render.warnings(doc["warnings"])
    _render.run(doc)
    _render.timeline(doc["history"])


LIST_PAGE = 20  # the runs `wfrun list` shows people unless --limit or --all says otherwise


@app.command("list")
@handle_errors
def list_runs(
    status: Annotated[list[str] | None, typer.Option(help="Only runs with this status.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    limit: Annotated[int | None, typer.Option(
        min=1, help=f"At most this many [default: {LIST_PAGE}; with --json: all].")] = None,
    all_runs: Annotated[bool, typer.Option("--all", help="Every run that matches.")] = False,
    children: Annotated[bool, typer.Option(
        "--children", help="Child runs (of workflow: steps) too.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List top-level runs, newest first (for people, the 20 newest unless --limit or --all).

    Example: wfrun list --status suspended --workflow expense-approval
    """
    from wfrun.engine import queries
    from wfrun.model import RUN_STATUSES

    for value in status or []:
        if value not in RUN_STATUSES:
            raise UsageError(f"--status {value!r} is not one of {', '.join(RUN_STATUSES)}")
    if all_runs and limit is not None:
        raise UsageError("--limit and --all cannot be used together; give one of them")
    from . import _render

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    more = 0
    if not said_missing_state_dir():
        page = limit if limit is not None or all_runs or as_json else LIST_PAGE
        engine = settings().engine()
        try:
            rows, more, problems = queries.page_of_runs(
                engine.store, status or None, workflow, page, children=children)
        except StoreMissing as exc:  # (a search_path naming no schema: as a missing directory)
            print(f"warning: {exc.message}", file=sys.stderr)
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
        if more:
            _render.lines([f"… {more} more; use --limit N or --all"])
    if problems:
        raise typer.Exit(5)


@app.command()
@handle_errors
def pending(
    workflow: Annotated[str | None, typer.Option(
        help="Only suspensions in a run of this workflow or in a child run below one.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Every open suspension across all runs, with how to resume it.

    Example: wfrun pending --workflow expense-approval --json
    """
    from wfrun.engine import queries

    from . import _render

    rows: list[dict[str, Any]] = []
    problems: list[str] = []
    if not said_missing_state_dir():
        try:
            rows, problems = queries.pending(settings().engine(), workflow)
        except StoreMissing as exc:  # (a search_path naming no schema: as a missing directory)
            print(f"warning: {exc.message}", file=sys.stderr)
    _render.problems(problems)
    if as_json:
        emit_json(rows)
    else:
        _render.suspensions(rows)
    if problems:
        raise typer.Exit(5)
