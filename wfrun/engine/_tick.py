"""`wfrun tick`: fire due timers, recover runs whose executor died, continue each run."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection

import wfrun.engine._timetable as _timetable
from wfrun.durations import to_iso
from wfrun.errors import NotFoundError, WfrunError
from wfrun.model import Run
from wfrun.store.abc import ExecutionClaim

from ._children import after_tick
from ._composite import fire_iterations, node_of
from ._document import rerun_limit_warning
from ._history import Events
from ._result import TickReport
from ._runner_api import RunnerAPI
from ._schedule import step_gone
from ._timers import fire_due
from ._tree import retry_notes
from ._workers import Share, Tried, tick_in_workers, worth_it

BATCH = 32  # runs claimed at a time: the next batch is acquired once these are advanced
# A batch's runs wait under this process's claims for their turn, where another worker could
# be advancing them: once a run took longer than SLOW, or the batch has been held for HOLD
# seconds, the runs not yet begun are let go and the tick acquires one run at a time (a tick
# that takes every due run it can; a forked worker's share is kept whole).
SLOW = 0.25
HOLD = 1.0


def tick(runner: RunnerAPI, limit: int | None = None, workers: int = 1,
         schedules: Collection[str] | None = None) -> TickReport:
    """Fire due timers, recover abandoned runs, and continue each until it pauses: the due
    runs are acquired a batch at a time (`Store.acquire_due`), or shared among up to `workers`
    forked processes when there are enough of them. Then the schedules of the workflows
    named in `schedules` (None: every one) start the runs they are owed."""
    now = to_iso(runner.clock.now())
    workers = workers if runner.store.multiprocess else 1
    due = runner.store.due(now, limit) if workers > 1 else []
    if worth_it(len(due), workers):
        report = TickReport(errors=runner.store.index_errors())
        tried = Tried()  # the runs the workers took: each tried once in the tick
        share: Share = advance
        if runner.store.shared_acquire:
            tried.share()
            share = _acquiring(now, tried)
        try:
            with runner.store.batch() as batch:  # owes what a worker that died could not
                tick_in_workers(runner, due, workers, share, report, batch)
        finally:
            tried.close()
        runner.manifests.flush()
    else:
        report = _report(runner, lambda report: _tick_batches(runner, now, limit, report))
        # bad index entries `due` dropped: reported, the others went on
        report.errors[:0] = runner.store.index_errors()
    _timetable.fire(runner, report, schedules)  # (SPEC §11): the runs they are owed by now
    return report


def advance(runner: RunnerAPI, due: list[str],
            progress: Callable[[TickReport], None] | None = None) -> TickReport:
    """Advance the runs found due, one after another, in this process (calling `progress`
    with the report so far after each run; what it holds is durable only once this returns).
    A tick worker's share: each run is claimed in turn, and skipped if another process holds
    it."""
    return _report(runner, lambda report: _tick_runs(runner, due, report, progress))


def _acquiring(now: str, tried: Tried) -> Share:
    """A worker's part on a store whose `acquire_due` several processes share (PostgreSQL):
    it acquires batches of the runs due at `now` itself, as a lone tick does, up to as many
    runs as its share of those the parent found due (which run goes to which worker is left
    to the store), skipping those any worker took already (`tried`, shared by them all: a run
    that could not be read or advanced is still due, and is tried once in the tick)."""
    def part(runner: RunnerAPI, share: list[str],
             progress: Callable[[TickReport], None] | None = None) -> TickReport:
        return _report(runner, lambda report: _tick_batches(runner, now, len(share), report,
                                                            progress, tried))
    return part


def _report(runner: RunnerAPI, work: Callable[[TickReport], None]) -> TickReport:
    """Run `work` (advancing runs into the report) in one batch: what it did is durable once
    the batch closes (the last state of each run and each run's history, made durable
    together rather than run by run)."""
    report = TickReport()
    with runner.store.batch():
        work(report)
    runner.manifests.flush()
    return report


def _tick_runs(runner: RunnerAPI, due: list[str], report: TickReport,
               progress: Callable[[TickReport], None] | None) -> None:
    for run_id in due:
        if runner.should_stop():
            break
        try:
            claim = runner.store.claim(run_id)
        except WfrunError as exc:  # (its claim file cannot be opened): the others go on
            report.errors.append({"run_id": run_id, "message": exc.message})
            continue
        if claim is None:
            continue  # another process is executing it: skipped, not waited for
        _advance_claimed(runner, claim, report)
        if progress is not None:
            progress(report)


def _tick_batches(runner: RunnerAPI, now: str, limit: int | None, report: TickReport,
                  progress: Callable[[TickReport], None] | None = None,
                  tried: Tried | None = None) -> None:
    """Acquire the runs due at `now` a batch at a time and advance each (at most `limit`),
    calling `progress` after each; every run at most once, however often it is found due
    again (a run that failed to advance is still due: it is acquired again with the next batch
    and let go). `tried`: the runs taken already, by this tick's other workers too."""
    done = Tried() if tried is None else tried  # the runs this tick advanced (or tried to)
    taken = 0  # how many of them this process took
    again = 0  # how many of its own may still be due at `now`: found again, so asked for on top
    found = 0  # how many the last acquire found that were taken already (by any worker)
    size = BATCH  # 1 once a run was slow: a batch would hold runs another worker could take
    while limit is None or taken < limit:
        want = size if limit is None else min(size, limit - taken)
        asked = want + max(again, found)
        batch: list[ExecutionClaim] = []
        found = 0
        claims = runner.store.acquire_due(now, asked)
        for claim in claims:
            if claim.run_id in done:
                found += 1
                claim.release()  # let go at once: taken, and tried, already this tick
            elif len(batch) >= want:
                claim.release()
            else:
                batch.append(claim)
        if not batch:
            if len(claims) < asked:
                return  # no more due runs free
            continue  # all taken already (by other workers too): ask for more
        # Advancing one run may need another of the batch (a parent starting or waking its
        # child): the runner takes that claim from `reserved`, and the run is not advanced
        # again here.
        runner.reserved = {claim.run_id: claim for claim in batch}
        held = time.monotonic()
        try:
            for claim in batch:
                if runner.should_stop():
                    return
                if runner.reserved.pop(claim.run_id, None) is None:
                    continue  # claimed by the work of a run before it in the batch
                done.add(claim.run_id)
                taken += 1
                began = time.monotonic()
                advanced, run = _advance_claimed(runner, claim, report)
                if progress is not None:
                    progress(report)
                due = run.next_due() if run is not None else None
                if not advanced or (due is not None and due <= now):
                    again += 1
                ended = time.monotonic()
                if ended - began > SLOW and limit is None:
                    size = 1
                # (not for a forked worker's share, `limit`: the runs it let go could be left
                # to workers that have taken their share already, and wait for the next tick)
                if runner.reserved and limit is None and (size == 1 or ended - held > HOLD):
                    break  # the rest are let go below, for whichever worker is free first
        finally:
            for left in runner.reserved.values():
                left.release()
            runner.reserved = {}


def _advance_claimed(runner: RunnerAPI, claim: ExecutionClaim, report: TickReport
                     ) -> tuple[bool, Run | None]:
    """Advance a run this process claimed (releasing the claim): False if that failed (the
    report's errors say why), and the run afterwards (None: nothing was done)."""
    run_id = claim.run_id
    try:
        run = _tick_run(runner, run_id, claim, report)
        after_tick(runner, run_id, report, run)
        return True, run
    except WfrunError as exc:
        claim.release()
        report.errors.append({"run_id": run_id, "message": exc.message})
    except Exception as exc:  # a bug must not stop the other runs from advancing
        claim.release()
        import logging

        logging.getLogger("wfrun.engine").exception("internal error advancing %s", run_id)
        report.errors.append({"run_id": run_id,
                              "message": f"internal error: {type(exc).__name__}: {exc}"})
    return False, None


def _tick_run(runner: RunnerAPI, run_id: str, claim: ExecutionClaim,
              report: TickReport) -> Run | None:
    """Fire what is due in one run and continue it; the run afterwards (None: nothing done)."""
    runner.links.ready()  # a damaged URL key: reported, the run left as it is
    run = claim.take_run()  # as read with the claim, if the store did: checked under the lock
    if run is None:
        try:
            run = runner.store.load(run_id)
        except NotFoundError:
            with runner.store.lock(run_id):  # creation holds this lock: no run is half-made now
                runner.store.reindex(run_id)  # its snapshot was deleted by hand
            claim.release()
            return None
    if run.finished:
        with runner.store.lock(run_id):
            runner.store.reindex(run_id)
        claim.release()
        return None
    warnings: list[str] = []
    workflow = runner.workflow_to_continue(run, warnings)
    fired: list[tuple[str, str]] = []

    def mutate(r: Run, events: Events) -> None:
        fired.extend(fire_iterations(r, workflow, runner.clock.now(), events))
        fired.extend(fire_due(r, workflow, runner.clock.now(), events))
        for sid, _reason in fired:  # a rerun, a sleep's end or a deadline of a removed step
            if sid in r.steps and sid not in workflow.steps:
                raise step_gone(r, sid, workflow, "restore it so the run can continue")
        if not fired:
            runner.store.reindex(r.run_id)
            raise _NothingDue  # a stale index entry: leave the snapshot untouched

    try:
        # One durable write per fired step: "started" is kept only until the outcome is saved.
        run, step = runner.transition(run_id, workflow, mutate, execute=True, durable=False,
                                       current=run, claim=claim)
    except _NothingDue:
        claim.release()
        return None
    except BaseException:
        claim.release()
        raise
    report.warnings.extend(warnings)
    since = to_iso(runner.clock.now())
    result = runner.execute_loop(run, workflow, claim, step, warnings, released=step is None)
    # what raised, and where (SPEC §5): its steps', iterations' and child runs' retries
    report.warnings.extend(retry_notes(runner, result.run, since, runner.command))
    for sid, reason in fired:
        report.advanced.append({"run_id": run_id, "step": sid or None, "reason": reason,
                                "status": result.run.status})
        state = node_of(result.run, sid) if reason == "rerun" and sid else None
        limit = state.rerun_limit if state is not None else None
        if limit is not None:  # this rerun was its last: say so on the tick's line
            report.advanced[-1]["warning"] = rerun_limit_warning(sid, limit)
    return result.run


class _NothingDue(Exception):
    """Raised inside a tick's transition when the run turned out not to be due."""
