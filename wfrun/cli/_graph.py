"""`wfrun graph`: a workflow as a Mermaid or Graphviz DOT graph (or JSON), optionally coloured by
a run."""

import sys
from typing import Annotated

import typer

from wfrun.errors import NotFoundError, UsageError

from . import _complete
from ._app import JsonOpt, app, emit_json, handle_errors
from ._settings import settings


@app.command()
@handle_errors
def graph(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(
        help="Workflow name or manifest path.", autocompletion=_complete.workflow_names)],
    run: Annotated[str | None, typer.Option(
        "--run", help="Colour each step by its status in this run.",
        autocompletion=_complete.run_ids)] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="mermaid (a flowchart GitHub renders) or dot (Graphviz).")] = "mermaid",
    as_json: JsonOpt = False,
) -> None:
    """Print the workflow as a graph: steps, needs, when actions, waits, sleeps, children.

    Shapes: a rectangle is a code step, a hexagon a wait step, a rounded box a sleep, a
    double-sided box a child workflow; a thick border marks foreach, a dashed one retry:.

    --json prints {"workflow", "description", "run_id", "steps", "edges"}: each step with
    its kind, needs, when, ... and status (with --run), each edge with from, to and when.

    Example: wfrun graph expense-approval --run RUN --format dot | dot -Tsvg > run.svg
    """
    from wfrun import graph as graphs

    if fmt not in graphs.FORMATS:
        raise UsageError(f"--format {fmt!r} is not a graph format; use --format mermaid (the "
                         "default) or --format dot (Graphviz)")
    source = ctx.get_parameter_source("fmt")
    if as_json and source is not None and source.name != "DEFAULT":
        raise UsageError("--json prints the graph as JSON: give --json or --format, not both")
    engine = settings().engine()
    spec = engine.workflow(workflow, check_code=False)
    statuses: dict[str, str] | None = None
    if run is not None:
        missing = settings().missing_state_dir()
        if missing:
            from wfrun.ids import check_run_id

            check_run_id(run)
            raise NotFoundError(f"no run {run}: the {missing}")
        result = engine.get(run)
        found = result.run
        if found.workflow != spec.name:
            raise UsageError(
                f"run {run} is a run of workflow '{found.workflow}', not '{spec.name}'; "
                f"draw it with 'wfrun graph {found.workflow} --run {run}'")
        statuses = {step: state.status for step, state in found.steps.items()}
        gone = [step for step in statuses if step not in spec.steps]
        if gone:
            result.warnings.append(f"run {run} has steps the workflow no longer has, not drawn: "
                                   f"{', '.join(gone)}")
        from . import _render

        _render.warnings(result.warnings)
    if as_json:
        emit_json(graphs.document(spec, statuses, run_id=run))
        return
    sys.stdout.write(graphs.render(spec, statuses, fmt, run_id=run))
