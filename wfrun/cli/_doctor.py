"""`wfrun doctor`: examine every file of the state directory and report what is wrong."""

import re
import sys

import typer

from ._app import JsonOpt, app, emit_json, handle_errors, said_missing_state_dir
from ._settings import settings


@app.command()
@handle_errors
def doctor(as_json: JsonOpt = False) -> None:
    """Check that every run's snapshot reads and verifies; report what does not. Changes nothing.

    Reports snapshots that cannot be read, parsed or verified, history lines that are not JSON,
    temporary files left by interrupted writes, runs missing from the due index and entries it
    cannot use, a damaged URL key, damaged schedule states, files or directories others may
    read, and (on PostgreSQL) tables, columns or indexes missing, each with where it is and the
    reason. Exits 5 if it found any, 0 otherwise. What is harmless (a temporary file or a second
    name of a snapshot, left by an interrupted write; the history or logs of a run whose
    snapshot or row is gone) is a warning with how to remove it, and counts as no problem.

    Example: wfrun doctor --json | jq '.problems[].path'
    """
    missing = said_missing_state_dir()  # nothing to check there: said, as list and tick say it
    engine = settings().engine()
    if not missing and not engine.has_state():  # a database whose tables were never made
        print(f"warning: {engine.store_label() or settings().state_dir} holds no wfrun state "
              "yet (its first write makes it): nothing to check", file=sys.stderr)
    runs, found = engine.check()
    where = engine.store_label() or settings().state_dir  # (a database: with its schema)
    problems = [p for p in found if p.get("severity") != "note"]
    notes = [{k: v for k, v in p.items() if k != "severity"} for p in found
             if p.get("severity") == "note"]
    if as_json:
        emit_json({"state_dir": settings().state_dir, "runs": runs, "ok": not problems,
                   "problems": problems, "notes": notes})
    else:
        from . import _render

        _render.warnings([problem_line(p) for p in notes])
        _render.lines([problem_line(p) for p in problems]
                      + [f"checked {runs} run(s) in {where}: "
                         + (f"{len(problems)} problem(s)" if problems else "no problems")
                         + (f"; {len(notes)} harmless warning(s)" if notes else "")])
    if problems:
        if not as_json:
            from . import _render

            _render.error(f"{len(problems)} problem(s) in {where}; see the list above (each "
                          "with where it is and why)")
        raise typer.Exit(5)


_CLAUSE_END = re.compile(r"[:;(]")


def problem_line(problem: dict[str, str]) -> str:
    """A problem as one line, `PATH  KIND: REASON`, saying each thing once: a reason that names
    the path in its first clause (as the messages other commands share do: "snapshot PATH is
    empty; ...") is the line alone, and one whose first clause names the kind ("mode 644: ...",
    "cannot read history: ...") goes without the `KIND:` label. A path that is no place but a
    phrase ("schedule of workflow 'beat'") is left out where the reason names what it is of
    ("the schedule state of workflow 'beat' is damaged ...")."""
    path, kind, reason = problem["path"], problem["kind"], problem["reason"]
    at = reason.find(path) if path else 0
    if at >= 0 and not _CLAUSE_END.search(reason, 0, at):
        return reason
    if _named_anyway(path, reason):
        return reason
    end = _CLAUSE_END.search(reason)
    if re.search(rf"\b{re.escape(kind)}\b", reason[:end.start() if end else None], re.IGNORECASE):
        return f"{path}  {reason}"
    return f"{path}  {kind}: {reason}"


def _named_anyway(path: str, reason: str) -> bool:
    """True if `path` is a phrase naming a thing of something ("schedule of workflow 'beat'",
    not a file or a database row) and `reason` names that something ("workflow 'beat'")."""
    if "/" in path or " of " not in path:
        return False
    return path.split(" of ", 1)[1] in reason
