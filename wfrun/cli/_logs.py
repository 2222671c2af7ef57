"""`wfrun logs`: what a run's steps printed and logged, optionally followed until the run ends."""

import json
import sys
import time
from typing import Annotated, Any

import typer

from . import _complete
from ._app import JsonOpt, app, emit_json, handle_errors
from ._settings import settings


def _line(record: dict[str, Any]) -> str:
    """One record for people: time, step (with its execution number after the first), stream."""
    step = str(record.get("step", "-"))
    runs = record.get("runs")
    if isinstance(runs, int) and runs > 1:
        step += f"#{runs}"
    stream = record.get("level") if record.get("stream") == "log" else record.get("stream")
    return f"{record.get('at', '')}  {step}  {stream}  {record.get('text', '')}"


def _print(records: list[dict[str, Any]], as_json: bool, follow: bool) -> None:
    if as_json and follow:  # JSON Lines: one object per record, as it comes
        out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    else:
        out = "".join(_line(r) + "\n" for r in records)
    if out:
        sys.stdout.write(out)
        sys.stdout.flush()


@app.command()
@handle_errors
def logs(
    run_id: Annotated[str, typer.Argument(
        help="The run whose step output to show.", autocompletion=_complete.run_ids)],
    step: Annotated[str | None, typer.Option(
        help="Only this step's output (a foreach step's: its iterations'; STEP[INDEX]: one "
             "iteration's; PARENT-STEP/CHILD-STEP: a step of the child run, as resume takes "
             "it).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f",
                                         help="Keep printing new output until the run finishes.")]
    = False,
    interval: Annotated[float, typer.Option(min=0.05, hidden=True,
                                            help="Seconds between checks with --follow.")] = 0.25,
    as_json: JsonOpt = False,
) -> None:
    """What a run's steps printed (stdout, stderr) and logged (ctx.log), oldest first.

    Each line: time, step (#N from its 2nd execution on), stream (stdout, stderr, error, or the
    ctx.log level), text. --json prints an array of records; with --follow, one JSON object per
    line. --follow returns once the run is completed, failed or cancelled.

    Example: wfrun logs RUN --step poll --follow
    """
    from wfrun.engine.queries import log_scope, nothing_logged
    from wfrun.ids import check_run_id

    check_run_id(run_id)
    store = settings().engine().store
    run = store.load(run_id)
    scope = log_scope(store, run, step)
    records, cursor = store.read_logs(scope.run.run_id)
    if as_json and not follow:
        emit_json(scope.shown(records))
        return
    shown = scope.shown(records)
    _print(shown, as_json, follow)
    if not records and not follow:
        print(f"run {scope.run.run_id} ({scope.run.status}) has no step output yet",
              file=sys.stderr)
    elif not shown and not follow and step is not None:
        print(nothing_logged(scope.run, step.rsplit("/", 1)[-1]), file=sys.stderr)
    while follow:
        # read before the log: nothing written after is lost
        finished = store.load(scope.run.run_id).finished
        records, cursor = store.read_logs(scope.run.run_id, cursor)
        _print(scope.shown(records), as_json, follow)
        if finished:
            return
        time.sleep(interval)
