"""`wfrun graph`: a workflow as a Mermaid or Graphviz DOT graph, optionally coloured by a run."""

import sys
from typing import Annotated

import typer

from wfrun.errors import NotFoundError, UsageError

from . import _complete
from ._app import app, handle_errors
from ._settings import settings


@app.command()
@handle_errors
def graph(
    workflow: Annotated[str, typer.Argument(
        help="Workflow name or manifest path.", autocompletion=_complete.workflow_names)],
    run: Annotated[str | None, typer.Option(
        "--run", help="Colour each step by its status in this run.",
        autocompletion=_complete.run_ids)] = None,
    fmt: Annotated[str, typer.Option(
        "--format", help="mermaid (a flowchart GitHub renders) or dot (Graphviz).")] = "mermaid",
) -> None:
    """Print the workflow as a graph: steps, needs, when actions, waits, sleeps, children.

    Shapes: a rectangle is a code step, a hexagon a wait step, a rounded box a sleep, a
    double-sided box a child workflow; a thick border marks foreach, a dashed one retry:.

    Example: wfrun graph expense-approval --run RUN --format dot | dot -Tsvg > run.svg
    """
    from wfrun import graph as graphs

    if fmt not in graphs.FORMATS:
        raise UsageError(f"--format {fmt!r} is not a graph format; use --format mermaid (the "
                         "default) or --format dot (Graphviz)")
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
    sys.stdout.write(graphs.render(spec, statuses, fmt, run_id=run))
