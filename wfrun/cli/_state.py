"""`wfrun state copy SRC DST`: move a store's runs, tokens, schedules and URL key to another."""

from typing import Annotated, Any

import typer

from wfrun.errors import UsageError

from ._app import JsonOpt, app, emit_json, handle_errors

ACTIONS = ("copy",)


@app.command()
@handle_errors
def state(
    action: Annotated[str, typer.Argument(
        metavar="copy", help="copy: put everything SRC holds into DST.",
        autocompletion=lambda incomplete: [a for a in ACTIONS if a.startswith(incomplete)],
        show_default=False)],
    src: Annotated[str | None, typer.Argument(
        metavar="SRC", help="The store to copy from: file:PATH or postgresql://USER@HOST:PORT/DB.",
        show_default=False)] = None,
    dst: Annotated[str | None, typer.Argument(
        metavar="DST", help="The store to copy into (created if need be).",
        show_default=False)] = None,
    as_json: JsonOpt = False,
) -> None:
    """Copy every run (state, inbox, history, logs), start token, schedule state and the URL
    signing key from the store SRC into the store DST, then read it all back from DST and
    compare it with SRC.

    Idempotent: what DST holds already is left alone, so a second copy copies nothing; what
    DST holds that differs is reported as a conflict. Resume and cancel links sent before the
    copy work against DST (the key moves with the runs). Nothing is written to SRC. Refused
    while a process executes runs of SRC (stop workers and 'tick --watch' first), and when DST
    has another URL key (exit 3, nothing copied). Exit 3 for conflicts, 4 if SRC does not
    exist, 5 if something could not be read, written or verified.

    Example: wfrun state copy file:.wfstate postgresql://wfrun@db.example.com:5432/wfrun
    """
    if action not in ACTIONS:
        raise UsageError(f"unknown state action {action!r}: use 'wfrun state copy SRC DST'")
    if src is None or dst is None:
        raise UsageError("name the store to copy from and the one to copy into: wfrun state "
                         "copy SRC DST (each file:PATH or postgresql://USER@HOST:PORT/DB)")
    from wfrun.store import copy_state

    report = copy_state(src, dst)
    from . import _render

    _render.problems([p["message"] for p in report.problems])
    if as_json:
        emit_json(report.to_dict())
    else:
        _render.lines(summary(report))
    if report.exit_code:
        raise typer.Exit(report.exit_code)


def summary(report: Any) -> list[str]:
    """The report in lines for people: what was copied, found there and verified, and whether
    it all matched."""
    copied, already, verified = report.copied, report.already, report.verified
    lines = [f"From {report.source} to {report.destination}:"]
    for kind, label in (("runs", "runs"), ("tokens", "start tokens"),
                        ("schedules", "schedule states")):
        line = (f"  {label:<16} {copied[kind]} copied, {already[kind]} already there, "
                f"{verified[kind]} verified")
        if kind == "runs":
            line += (f" ({_count(verified['history_events'], 'history event')}, "
                     f"{_count(verified['log_records'], 'log record')})")
        lines.append(line)
    if copied["key"] or already["key"]:
        key = ("copied" if copied["key"] else "already there") + (
            ", verified" if verified["key"] else ", not verified")
    else:
        key = "none in the source (no link was ever signed)"
    lines.append(f"  {'URL signing key':<16} {key}")
    nothing = not any(copied.values())
    if report.problems:
        lines.append(f"{len(report.problems)} problem(s), said above; the rest was copied "
                     "and verified." if not nothing else
                     f"{len(report.problems)} problem(s), said above; nothing else to copy.")
    elif nothing:
        lines.append("Nothing to copy: the destination holds all of it already, and it "
                     "matches the source.")
    else:
        lines.append("Everything was read back from the destination and matches the source.")
    return lines


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}{'' if number == 1 else 's'}"
