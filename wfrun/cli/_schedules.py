"""`wfrun schedules`: the workflows' schedules (SPEC §11), and pausing or unpausing one."""

import sys
from typing import Annotated, Any

import typer

from wfrun._cite import cited
from wfrun.errors import UsageError

from . import _complete
from ._app import JsonOpt, app, emit_json, handle_errors, said_missing_state_dir
from ._settings import settings

ACTIONS = ("pause", "unpause")


@app.command()
@handle_errors
def schedules(
    action: Annotated[str | None, typer.Argument(
        help="pause or unpause; leave out to list the schedules.",
        autocompletion=lambda incomplete: [a for a in ACTIONS if a.startswith(incomplete)])]
    = None,
    workflow: Annotated[str | None, typer.Argument(
        help="The workflow whose schedule to pause or unpause.",
        autocompletion=_complete.workflow_names)] = None,
    now: Annotated[str | None, typer.Option(
        help="Use this time as now: ISO-8601, or +DURATION from now (+10m, +1d).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """The schedules, with each one's next run and last run; pause or unpause one.

    A paused schedule starts no run; unpausing it does not catch up the fire times it missed
    while paused.

    Example: wfrun schedules pause daily-report
    """
    command = settings().command()
    if action is not None and action not in ACTIONS:
        raise UsageError(f"unknown action {action!r}: {cited(f'{command} schedules')} lists "
                         f"the schedules, {cited(f'{command} schedules pause WORKFLOW')} and "
                         f"{cited(f'{command} schedules unpause WORKFLOW')} pause and unpause one")
    if action is not None and workflow is None:
        raise UsageError(f"{cited(f'{command} schedules {action}')} needs the workflow whose "
                         f"schedule to {action}; {cited(f'{command} schedules')} lists them")
    engine = settings().engine(now)
    if action is not None and workflow is not None:
        row, changed = engine.pause_schedule(workflow, action == "pause")
        if as_json:
            emit_json(row)
        else:
            print(_pause_sentence(row, action, changed, command))
        return
    said_missing_state_dir()  # no schedule paused nor run there: listed from the manifests
    rows = engine.schedules()
    if as_json:
        emit_json([{k: v for k, v in row.items() if k != "exit_code"} for row in rows])
    else:
        _show(rows, engine.workflows_dir, engine.clock.now())
    for error in dict.fromkeys(row["error"] for row in rows if row["error"]):
        print(f"error: {error}", file=sys.stderr)  # (once: manifests of one name share theirs)
    codes = [row["exit_code"] for row in rows if row.get("exit_code")]
    if codes:
        raise typer.Exit(max(codes))


def _time(value: str | None) -> str:
    """A UTC time for people: to the second (the milliseconds of a fire time are zero)."""
    return value.replace(".000Z", "Z") if value else "-"


def _pause_sentence(row: dict[str, Any], action: str, changed: bool, command: str) -> str:
    name = row["workflow"]
    if action == "pause":
        if not changed:
            return f"The schedule of {name} is already paused."
        return (f"Paused the schedule of {name}: tick starts no run of it until "
                f"{cited(f'{command} schedules unpause {name}')}.")
    upcoming = (f"its next run is at {_time(row['next_fire'])} ({row['next_fire_local']})"
                if row["next_fire"] else "")
    if not changed:
        return f"The schedule of {name} is not paused; {upcoming}."
    return (f"Unpaused the schedule of {name}: {upcoming}; the fire times missed while it was "
            "paused are not caught up.")


def _show(rows: list[dict[str, Any]], workflows_dir: str, now: Any) -> None:
    from wfrun.durations import parse_iso

    from . import _render

    table = []
    notes = []
    for row in rows:
        what = (f"cron {row['cron']}" if row["cron"] else f"every {row['every']}"
                if row["every"] else "-")  # (a manifest that does not load: not known)
        if row["error"]:
            upcoming, local = "error", "(on stderr)"
        elif row["paused"]:
            upcoming, local = "paused", "-"
        else:
            due = parse_iso(row["next_fire"]) <= now
            upcoming = _time(row["next_fire"]) + (" (due)" if due else "")
            local = f"{row['next_fire_local']} {row['timezone']}"
        last = f"{row['last_run']} ({row['last_run_status']})" if row["last_run"] else "-"
        table.append([row["workflow"], what, upcoming, local, last])
        skip = row["last_skip"]
        if skip and (not row["last_fire"] or parse_iso(skip["fire"]) > parse_iso(row["last_fire"])):
            notes.append(f"{row['workflow']}: the run for {_time(skip['fire'])} was skipped: "
                         f"{skip['reason']}")
    _render.table(["workflow", "schedule", "next run (UTC)", "local time", "last run"], table,
                  f"no schedules in {workflows_dir}", whole=(0, 2, 4))
    if notes:
        _render.lines(notes)
