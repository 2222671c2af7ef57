"""Operating commands: tick (cron), validate, workflows."""

import os
import re
import signal
import sys
import threading
from typing import Annotated, Any

import typer

from wfrun.errors import ManifestError, NotFoundError, StateError, StoreMissing, UsageError, WfrunError

from . import _complete, _stdout
from ._app import (
    JsonOpt,
    VerboseOpt,
    app,
    echo_steps,
    emit_json,
    emit_json_line,
    executing,
    handle_errors,
    run_failed,
)
from ._settings import settings, with_hint


@app.command()
@handle_errors
def tick(
    now: Annotated[str | None, typer.Option(
        help="Use this time as now: ISO-8601, or +DURATION from now (+10m, +1d).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Advance at most N runs.")] = None,
    as_json: JsonOpt = False,
    watch: Annotated[bool, typer.Option(help="Keep ticking until SIGTERM/SIGINT.")] = False,
    interval: Annotated[float | None, typer.Option(
        min=0.1, max=86400.0, help="Longest wait between ticks in seconds, with --watch "
        "[default: 15]; on PostgreSQL the next tick starts as soon as a run becomes due.",
        show_default=False)] = None,
    workers: Annotated[int | None, typer.Option(
        min=1, help="Worker processes when many runs are due [default: 2 per CPU, at most 4].")]
    = None,
    verbose: VerboseOpt = False,
) -> None:
    """Fire due timers, recover interrupted runs, and continue them until they pause.

    Prints nothing when nothing was due (one line on stderr when the state directory does not
    exist, or when this tick created it to keep a schedule's state).
    Cron: * * * * * cd /srv/app && .venv/bin/wfrun tick

    With --watch, --json prints JSON Lines: one compact {"advanced": [...], "errors": [...]}
    object per line, for each tick that advanced a run or had errors; a tick that had nothing
    to do prints nothing.

    Example: wfrun tick --now 2026-11-22T15:00:00Z --json
    """
    echo_steps(verbose)
    if interval is not None and not watch:
        raise UsageError("--interval is the wait between ticks of --watch; add --watch, or "
                         "leave --interval out for one tick")
    if interval != interval:  # NaN passes typer's range check
        raise UsageError("--interval: nan is not a number of seconds (0.1 to 86400)")
    interval = 15.0 if interval is None else interval
    engine = settings().engine(now)
    workers = workers or _default_workers()
    missing = settings().missing_state_dir()
    if not missing and not os.path.isdir(engine.workflows_dir):  # (cron: a wrong directory)
        where = os.path.abspath(engine.workflows_dir)
        what = (f"the workflows directory {where} is not a directory"
                if os.path.lexists(where) else f"no workflows directory {where}")
        print(f"warning: {what}: schedules do not fire; due runs continue with the manifests "
              "they were started from (a run whose manifest is gone is reported as an error); "
              "run tick from the project directory, or name it with --workflows-dir or "
              "WFRUN_WORKFLOWS_DIR",
              file=sys.stderr)
    if missing and _no_schedule(engine):  # a cron line without `cd`: say so, not be idle
        print(f"warning: {missing}", file=sys.stderr)
        if not watch:
            if as_json:
                emit_json({"advanced": [], "errors": []})
            raise typer.Exit(0)
        missing = None  # said
    # a missing state directory that the schedules' tick makes: said once, after that tick
    scheduled = engine.schedule_names() if missing else []
    if not watch:
        executing(engine, None)
        code = _tick_once(engine, as_json, limit, workers)
        if missing:
            _said_state_dir(missing, scheduled)
        raise typer.Exit(code)
    stop = threading.Event()

    def request_stop(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    engine.should_stop = stop.is_set
    _stdout.divert()  # what steps' subprocesses write to descriptor 1 goes to stderr
    engine.wait_for_work(0, stop)  # listen from now on: what commits during a tick wakes the next
    ticked = False
    while not stop.is_set():
        if now is None:
            engine = settings().engine(None)
            engine.should_stop = stop.is_set
        try:
            _tick_once(engine, as_json, limit, workers, watching=True)
            sys.stdout.flush()  # each tick's report as it is made, through a pipe too
            if missing and not ticked:
                _said_state_dir(missing, scheduled)
            ticked = True
            # until a run may have become due (PostgreSQL: a NOTIFY, the earliest due time), a
            # stop request, or `interval` seconds
            engine.wait_for_work(interval, stop)
        except StateError as exc:
            if not ticked:
                raise  # the store cannot be used at all (a wrong URL): exit 5, as any command
            print(f"error: {exc.message}", file=sys.stderr, flush=True)  # an outage: go on
            stop.wait(interval)


def _said_state_dir(missing: str, scheduled: list[str]) -> None:
    """On stderr, after the first tick over a state directory that did not exist: that the
    tick created it for the schedules (a mistyped --state-dir in cron is not silently a second
    store), or, if nothing was kept, that it does not exist."""
    made = os.path.isdir(settings().state_dir)
    said = settings().created_state_dir(scheduled) if made and scheduled else missing
    print(f"warning: {said}", file=sys.stderr, flush=True)


def _no_schedule(engine: Any) -> bool:
    """True unless a workflow has a schedule: then tick fires it, making the state directory."""
    return not engine.has_schedules()


def _default_workers() -> int:
    """Two tick workers per CPU this process may use, at most 4: a worker waits on an fsync
    for about a third of each run, and a second one per CPU fills that time."""
    try:
        cpus = len(os.sched_getaffinity(0))  # a container's share, not the host's count
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return min(4, 2 * cpus)


_SAID: set[str] = set()  # warnings a `tick --watch` gave once


def _tick_once(engine: Any, as_json: bool, limit: int | None, workers: int,
               watching: bool = False) -> int:
    """One tick and its report; `watching` (--watch): with --json, one JSON line per tick that
    advanced a run or had errors, and nothing for a tick that had nothing to do."""
    try:
        report = engine.tick(limit=limit, workers=workers)
    except StoreMissing as exc:  # a search_path naming no schema: as a missing directory
        if exc.message not in _SAID:  # (once, in a `--watch`)
            _SAID.add(exc.message)
            print(f"warning: {exc.message}", file=sys.stderr, flush=True)
        if as_json and not watching:
            emit_json({"advanced": [], "errors": []})
        return 0
    failed = any(a["status"] == "failed" for a in report.advanced)
    report.warnings = [with_hint(w) for w in report.warnings]  # (a run taken over: how to see it)
    for said in (*report.errors, *report.advanced):
        for key in ("message", "warning"):
            if isinstance(said.get(key), str):
                said[key] = with_hint(said[key])
    # a step's own warning (its rerun limit) too: on stderr, as show says it (SPEC §4); with
    # --json it is also in its `advanced` entry
    steps = [f"run {a['run_id']}: {a['warning']}" for a in report.advanced if a.get("warning")]
    for warning in dict.fromkeys([*report.warnings, *steps]):
        print(f"warning: {warning}", file=sys.stderr)
    for err in report.errors:
        print(f"error: {tick_error(err)}", file=sys.stderr)
    for run_id in dict.fromkeys(a["run_id"] for a in report.advanced if a["status"] == "failed"):
        _tick_failure(engine, run_id)
    if as_json and watching:
        if report.advanced or report.errors:
            emit_json_line({"advanced": report.advanced, "errors": report.errors})
    elif as_json:
        emit_json({"advanced": report.advanced, "errors": report.errors})
    elif report.advanced:
        from . import _render

        _render.lines([f"{a['run_id']}  {a['step'] or '-'}  {a['reason']} -> {a['status']}"
                       for a in report.advanced])
    return 1 if failed or report.errors else 0


def tick_error(err: dict[str, Any]) -> str:
    """One of tick's errors as a sentence: its message, after `run RUN: ` (or `workflow NAME: `
    for a schedule's) unless the message already names that run ("run R was taken over ...")
    or workflow ("schedule of workflow 'W' could not start ...")."""
    message = str(err["message"])
    if err.get("run_id"):
        named = re.search(rf"\brun {re.escape(err['run_id'])}(?![\w-])", message)
        return message if named else f"run {err['run_id']}: {message}"
    workflow = err.get("workflow")
    return message if f"workflow '{workflow}'" in message else f"workflow {workflow}: {message}"


def _tick_failure(engine: Any, run_id: str) -> None:
    """On stderr: a run tick advanced failed, with its step error and the workflow code that
    raised it (SPEC §5), as start, resume, retry and fork say theirs."""
    try:
        error = engine.store.load(run_id).error
    except WfrunError:
        error = None  # deleted or damaged since: the line says what is known
    run_failed(run_id, error)


@app.command()
@handle_errors
def validate(
    workflows: Annotated[list[str] | None, typer.Argument(
        help="Names or paths; all if none.", autocompletion=_complete.workflow_names)]
    = None,
    as_json: JsonOpt = False,
) -> None:
    """Check manifests and their modules without running anything.

    Example: wfrun validate expense-approval
    """
    from wfrun import loader

    engine = settings().engine()
    _stdout.divert()  # what a module writes to descriptor 1 as it is imported goes to stderr
    targets = workflows or loader.discover(engine.workflows_dir)
    results = []
    conflicts = loader.name_conflicts(engine.workflows_dir)
    for target in targets:
        workflow = None
        try:
            workflow = engine.workflow(target)
            if workflow.path in conflicts:
                raise ManifestError(conflicts[workflow.path])
            results.append({"workflow": workflow.name, "path": workflow.path, "ok": True,
                            "error": None, "steps": len(workflow.steps)})
        except WfrunError as exc:
            # as for a valid one: the workflow's name and its manifest (null if none was found)
            path = workflow.path if workflow else _manifest_path(target, engine.workflows_dir)
            name = workflow.name if workflow else loader.stated_name(path) if path else target
            results.append({"workflow": name, "path": path, "ok": False,
                            "error": exc.message, "exit_code": exc.exit_code})
    if as_json:
        emit_json(results)
    else:
        for item in results:
            if item["ok"]:
                count = item["steps"]
                print(f"ok      {item['workflow']} ({count} step{'s' if count != 1 else ''}) {item['path']}")
            else:
                print(f"error: {item['error']}", file=sys.stderr)
    if not targets:
        print(_none_found(engine.workflows_dir), file=sys.stderr)
        raise typer.Exit(4)
    bad = [r for r in results if not r["ok"]]
    if bad:
        raise typer.Exit(max(int(r["exit_code"]) for r in bad))


@app.command("workflows")
@handle_errors
def list_workflows(as_json: JsonOpt = False) -> None:
    """The workflows found in the workflows directory, with their steps.

    Example: wfrun --workflows-dir ./flows workflows
    """
    from wfrun import loader

    engine = settings().engine()
    problem = loader.directory_problem(engine.workflows_dir)
    if problem is not None:  # missing, or a file: an error (exit 4), as for validate
        raise NotFoundError(problem)
    rows: list[dict[str, Any]] = []
    for path in loader.discover(engine.workflows_dir):
        try:
            wf = loader.load_workflow(path, check_code=False)
            rows.append({"name": wf.name, "path": path, "description": wf.description,
                         "steps": [{"id": s.id, "kind": s.kind} for s in wf.steps.values()],
                         "error": None})
        except WfrunError as exc:
            rows.append({"name": loader.stated_name(path), "path": path, "description": "",
                         "steps": [], "error": exc.message})
    if as_json:
        emit_json(rows)
        return
    from . import _render

    _render.table(
        ["workflow", "steps", "description"],
        [[r["name"] + (" (invalid)" if r["error"] else ""),
          ", ".join(s["id"] for s in r["steps"]) or (r["error"] or ""),
          r["description"]] for r in rows],
        _none_found(engine.workflows_dir),
    )


def _manifest_path(target: str, workflows_dir: str) -> str | None:
    """The manifest that `validate TARGET` names, or None if there is none (or it is
    ambiguous: two manifests with that `name:`)."""
    from wfrun import loader

    try:
        return loader.find_manifest(target, workflows_dir)
    except WfrunError:
        return None


def _none_found(directory: str) -> str:
    """What to say when a workflows directory holds no manifest, does not exist, or is not a
    directory."""
    from wfrun import loader

    problem = loader.directory_problem(directory)
    if problem is None:
        return f"no workflows in {directory} (no NAME.yaml, NAME.yml or NAME/workflow.yaml)"
    return f"no workflows: {problem}"
