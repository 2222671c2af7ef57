"""`wfrun tick`: fire due timers, recover runs whose executor died, continue each run."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from wfrun.durations import to_iso
from wfrun.errors import CodeChangedError, NotFoundError, WfrunError
from wfrun.model import PENDING, Run
from wfrun.store.abc import ExecutionClaim

from . import _children, _timetable, _workers
from ._document import rerun_limit_warning, retry_notes
from ._iteration_pauses import fire_iterations
from ._schedule import Events
from ._transitions import fire_due

if TYPE_CHECKING:
    from .core import Engine


@dataclass
class TickReport:
    """What one `tick` did: `{"advanced": [...], "errors": [...]}`."""

    advanced: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def tick(engine: Engine, limit: int | None = None, workers: int = 1) -> TickReport:
    """Fire due timers, recover abandoned runs, and continue each until it pauses (sharing
    the due runs among up to `workers` forked processes when there are enough of them)."""
    due = engine.store.due(to_iso(engine.clock.now()), limit)
    dropped = engine.store.index_errors()  # bad index entries: reported, the others go on
    if _workers.worth_it(len(due), workers):
        report = TickReport(errors=dropped)
        _workers.tick_in_workers(engine, due, workers, advance, report)
    else:
        report = advance(engine, due)
        report.errors[:0] = dropped
    _timetable.fire(engine, report)  # schedules (SPEC §11): the runs they are owed by now
    return report


def advance(engine: Engine, due: list[str],
            progress: Callable[[TickReport], None] | None = None) -> TickReport:
    """Advance the runs found due, one after another, in this process (calling `progress`
    with the report so far after each run; what it holds is durable only once this returns)."""
    report = TickReport()
    # Durability is owed once, at the end, for everything the tick did: the last state of each
    # run it advanced shares one flush, and each run's history is fsynced once.
    engine.defer_sync = set()
    try:
        _tick_runs(engine, due, report, progress)
    finally:
        synced, engine.defer_sync = engine.defer_sync, None
        engine.store.flush()
        _sync_histories(engine, sorted(synced), report)
    engine.manifests.flush()
    return report


def _tick_runs(engine: Engine, due: list[str], report: TickReport,
               progress: Callable[[TickReport], None] | None) -> None:
    for run_id in due:
        if engine.should_stop():
            break
        claim = engine.store.claim(run_id)
        if claim is None:
            continue  # another process is executing it: skipped, not waited for
        try:
            _children.after_tick(engine, run_id, report, _tick_run(engine, run_id, claim, report))
        except WfrunError as exc:
            claim.release()
            report.errors.append({"run_id": run_id, "message": exc.message})
        except Exception as exc:  # a bug must not stop the other runs from advancing
            claim.release()
            import logging

            logging.getLogger("wfrun.engine").exception("internal error advancing %s", run_id)
            report.errors.append({"run_id": run_id,
                                  "message": f"internal error: {type(exc).__name__}: {exc}"})
        if progress is not None:
            progress(report)


def _sync_histories(engine: Engine, run_ids: list[str], report: TickReport) -> None:
    """Make the histories of the runs tick advanced durable, several fsyncs at a time (the file
    system commits concurrent fsyncs together)."""
    def sync(run_id: str) -> dict[str, str] | None:
        try:
            engine.store.sync_history(run_id)
        except WfrunError as exc:
            return {"run_id": run_id, "message": exc.message}
        return None

    if len(run_ids) > 1:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(8) as pool:
            failed = list(pool.map(sync, run_ids))
    else:
        failed = [sync(run_id) for run_id in run_ids]
    report.errors.extend(f for f in failed if f is not None)


def _tick_run(engine: Engine, run_id: str, claim: ExecutionClaim,
              report: TickReport) -> Run | None:
    """Fire what is due in one run and continue it; the run afterwards (None: nothing done)."""
    try:
        run = engine.store.load(run_id)
    except NotFoundError:
        with engine.store.lock(run_id):  # creation holds this lock: no run is half-made now
            if not engine.store.exists(run_id):
                engine.store.drop_index(run_id)  # its snapshot was deleted by hand
        claim.release()
        return None
    if run.finished:
        with engine.store.lock(run_id):
            engine.store.reindex(engine.store.load(run_id))
        claim.release()
        return None
    warnings: list[str] = []
    workflow = engine.workflow_of(run, warnings)
    fired: list[tuple[str, str]] = []

    def mutate(r: Run, events: Events) -> None:
        fired.extend(fire_iterations(r, workflow, engine.clock.now(), events))
        fired.extend(fire_due(r, workflow, engine.clock.now(), events))
        for sid, _reason in fired:
            if sid in r.steps and sid not in workflow.steps and r.steps[sid].status == PENDING:
                raise CodeChangedError(
                    f"step '{sid}' of run {run_id} no longer exists in workflow "
                    f"'{r.workflow}' ({workflow.path}); restore it so the run can continue"
                )
        if not fired:
            engine.store.reindex(r)
            raise _NothingDue  # a stale index entry: leave the snapshot untouched

    try:
        # One durable write per fired step: "started" is kept only until the outcome is saved.
        run, step = engine._transition(run_id, workflow, mutate, execute=True, durable=False,
                                       current=run)
    except _NothingDue:
        claim.release()
        return None
    except BaseException:
        claim.release()
        raise
    report.warnings.extend(warnings)
    since = to_iso(engine.clock.now())
    result = engine._execute_loop(run, workflow, claim, step, warnings)
    report.warnings.extend(retry_notes(result.run, since))  # what raised, and where (SPEC §5)
    for sid, reason in fired:
        report.advanced.append({"run_id": run_id, "step": sid or None, "reason": reason,
                                "status": result.run.status})
        state = result.run.steps.get(sid) if reason == "rerun" else None  # not an iteration
        limit = state.rerun_limit if state is not None else None
        if limit is not None:  # this rerun was its last: say so on the tick's line
            report.advanced[-1]["warning"] = rerun_limit_warning(sid, limit)
    return result.run


class _NothingDue(Exception):
    """Raised inside a tick's transition when the run turned out not to be due."""
