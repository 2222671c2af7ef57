"""`wfrun logs`: what a run's steps printed and logged, optionally followed until the run ends."""

import json
import sys
import time
from collections.abc import Callable
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


def _print(records: list[dict[str, Any]], keep: Callable[[dict[str, Any]], bool], as_json: bool,
           follow: bool) -> None:
    shown = [r for r in records if keep(r)]
    if as_json and follow:  # JSON Lines: one object per record, as it comes
        out = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in shown)
    else:
        out = "".join(_line(r) + "\n" for r in shown)
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
             "iteration's).")] = None,
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
    from wfrun.engine.queries import log_filter
    from wfrun.ids import check_run_id

    check_run_id(run_id)
    store = settings().engine().store
    run = store.load(run_id)
    keep = log_filter(run, step)
    records, cursor = store.read_logs(run_id)
    if as_json and not follow:
        emit_json([r for r in records if keep(r)])
        return
    _print(records, keep, as_json, follow)
    if not records and not follow:
        print(f"run {run_id} ({run.status}) has no step output yet", file=sys.stderr)
    while follow:
        finished = store.load(run_id).finished  # read before the log: nothing written after is lost
        records, cursor = store.read_logs(run_id, cursor)
        _print(records, keep, as_json, follow)
        if finished:
            return
        time.sleep(interval)
