"""Recovery commands: retry a failed run in place, fork a run from a step into a new one."""

from typing import Annotated

import typer

from wfrun.ids import check_run_id

from . import _complete, _input, _stdout
from ._app import JsonOpt, app, executing, finish_run, handle_errors
from ._settings import settings

ReasonOpt = Annotated[str | None, typer.Option(help="Why (kept in history).")]


@app.command()
@handle_errors
def retry(
    run_id: Annotated[str, typer.Argument(
        help="The failed run.", autocompletion=_complete.run_ids)],
    step: Annotated[str | None, typer.Option(
        help="Re-execute from this step (default: the failed one).",
        autocompletion=_complete.step_ids)] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Re-execute a failed run from its failed step (or --step), in the same run.

    Example: wfrun retry RUN --reason "fixed the API key"
    """
    check_run_id(run_id)
    _input.check_text(step, "--step")
    _input.check_text(reason, "--reason")
    engine = settings().engine()
    executing(engine, run_id)
    finish_run(engine, engine.retry(run_id, step, reason), as_json)


@app.command()
@handle_errors
def fork(
    run_id: Annotated[str, typer.Argument(
        help="The run to fork (any status).", autocompletion=_complete.run_ids)],
    from_step: Annotated[str, typer.Option(
        "--from", help="Execute from this step; earlier steps keep their outputs.",
        autocompletion=_complete.step_ids)],
    input: Annotated[str | None, typer.Option(
        "--input", "-i", help="Replace the input: JSON, @file or - (stdin).")] = None,
    new_id: Annotated[str | None, typer.Option("--run-id", help="Id of the new run.")] = None,
    reason: ReasonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create a new run that keeps what happened before a step and executes from it.

    Example: wfrun fork RUN --from pay --input '{"user": "ann", "amount": 40}'
    """
    check_run_id(run_id)
    if new_id is not None:
        check_run_id(new_id)
    _input.check_text(from_step, "--from")
    _input.check_text(reason, "--reason")
    given, data = _input.read_payload(input, "--input")
    engine = settings().engine()
    _stdout.divert()  # (the new run's id is not known yet: an interruption says no more)
    finish_run(engine, engine.fork(run_id, from_step, data, replace_input=given, new_id=new_id,
                                   reason=reason), as_json)
