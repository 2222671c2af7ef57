"""The runner: loads, claims, changes and executes runs, the doing behind every engine command.

`Engine` (core.py) is its public face. The helper modules receive the runner as an argument
(typed by `_runner_api.RunnerAPI`) and never import this module back.
"""

from __future__ import annotations

import functools
import os
import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wfrun import _schema, _stepcode, loader
from wfrun._detach import same_json
from wfrun._specs import Workflow
from wfrun.clock import Clock
from wfrun.durations import to_iso
from wfrun.errors import ClaimLost, ConflictError, LeftoverRecords, NotFoundError, WfrunError
from wfrun.ids import check_run_id, new_run_id
from wfrun.model import FINISHED, RUNNING, Run, StepState
from wfrun.store.abc import Durability, ExecutionClaim, Store

from ._actions import route_problem
from ._child_runs import check_children
from ._children import after_change, execute_composite
from ._composite import is_composite
from ._deferred_manifests import DeferredManifestCache
from ._document import output_lost_warning
from ._execute import execute
from ._history import Events, event
from ._inbox import settle_inbox
from ._links import LinkMaker, remember_nonces
from ._result import NO_INPUT, Mutation, Result
from ._schedule import schedule
from ._timers import recover_interrupted
from ._transitions import apply_outcome, cancel_run

# a claim held by a process with no step executing is tried again this many times, pausing
# 10, 20, ... ms (about 0.5 s in all; see Runner.continue_if_woken)
_CLAIM_ATTEMPTS = 10
_CLAIM_PAUSE_SECONDS = 0.01

class Runner:
    """Runs workflows against a store, with time from a clock (see `RunnerAPI`)."""

    def __init__(self, store: Store, clock: Clock, *, workflows_dir: str, base_url: str,
                 command: str) -> None:
        self.store = store
        self.clock = clock
        self.workflows_dir = workflows_dir
        self.base_url = base_url
        self.command = command
        self._links: LinkMaker | None = None
        self.manifests = DeferredManifestCache(store)  # parsed manifests, kept by the store
        self.should_stop: Callable[[], bool] = lambda: False  # tick --watch sets it on SIGTERM
        # claims a tick acquired and has not advanced yet: a run they are on is claimed from
        # here when another run's work needs it (a parent starting or waking its child)
        self.reserved: dict[str, ExecutionClaim] = {}
        self._notes = threading.local()  # each thread's `note`s, for the command it runs

    @property
    def links(self) -> LinkMaker:
        """Makes resume and cancel links (reads the store's URL key when it first makes or
        checks one)."""
        if self._links is None:
            self._links = LinkMaker(self.store.secret_key, self.base_url, self.command,
                                    stored=self.store.stored_secret_key)
        return self._links

    # -- workflows -----------------------------------------------------------------------------

    def workflow(self, name_or_path: str, *, check_code: bool = True) -> Workflow:
        """Find and load a workflow by name or manifest path (with its child workflows)."""
        workflow = loader.load_workflow(loader.find_manifest(name_or_path, self.workflows_dir),
                                        check_code=check_code, cache=self.manifests)
        if check_code:
            check_children(self, workflow)
        return workflow

    def workflow_of(self, run: Run, warnings: list[str]) -> Workflow:
        """The current code of a run's workflow; warns if it changed since the run started."""
        path = run.manifest_path
        if not path or not os.path.isfile(path):
            try:
                path = loader.find_manifest(run.workflow, self.workflows_dir)
            except NotFoundError:
                if not run.manifest_path:
                    raise
                raise NotFoundError(self._manifest_gone(run)) from None
        workflow = loader.load_workflow(path, check_code=False, cache=self.manifests)
        changed = [k for k, v in run.code_hash.items() if workflow.code_hash.get(k) != v]
        if changed:
            warnings.append(
                f"workflow '{run.workflow}' changed since run {run.run_id} started "
                f"({' and '.join(changed)}); continuing with the current code"
            )
        return workflow

    def _manifest_gone(self, run: Run) -> str:
        """What to say when the manifest a run was started from is gone and the workflows
        directory has none of its name either: the path the run remembers, and what to do."""
        problem = loader.directory_problem(self.workflows_dir, advice=False) or (
            f"the workflows directory {os.path.abspath(self.workflows_dir)} has no workflow "
            f"'{run.workflow}'")
        return (f"run {run.run_id}'s manifest {run.manifest_path} (workflow '{run.workflow}') "
                f"is gone, and {problem}; restore that file, or put a manifest "
                f"with 'name: {run.workflow}' in the workflows directory")

    def workflow_to_continue(self, run: Run, warnings: list[str]) -> Workflow:
        """`workflow_of`, with the code checked as `start` checks it (ManifestError)."""
        workflow = self.workflow_of(run, warnings)
        _stepcode.check_handlers(workflow)
        return workflow

    # -- start and cancel ----------------------------------------------------------------------

    def start(self, name_or_path: str, input: Any = NO_INPUT, run_id: str | None = None,
              parent: dict[str, Any] | None = None) -> Result:
        """Create a run and execute it until it completes, fails or pauses (input: `{}` if
        not given; an explicit None is kept as JSON null). `parent` makes it the child run
        of a `workflow:` step (the parent records it)."""
        made = self._new_run(name_or_path, input, run_id, parent)
        if isinstance(made, Result):
            return made
        workflow, run, now, claim = made
        data = run.input
        events = [event(now, "started", input=data)]
        if parent:
            events[0]["parent"] = {k: parent[k] for k in ("run_id", "step", "index")}
        try:
            step = schedule(run, workflow, now, events, execute=True)
            remember_nonces(run)
            try:
                self.store.create(run, events)
            except LeftoverRecords:
                raise
            except ConflictError:
                claim.release()
                return self.existing_start(run.run_id, workflow, data)
            self.manifests.flush()  # the state directory exists now
            try:
                result = self.execute_loop(run, workflow, claim, step, [])
            except ClaimLost as exc:  # the run was created: another process goes on with it
                result = self.taken_over(run.run_id, workflow, [], exc)
            if parent is None:  # a child's parent is executing it and records it itself
                after_change(self, result.run, result.warnings)
            return result
        finally:
            claim.release()

    def create(self, name_or_path: str, input: Any = NO_INPUT, run_id: str | None = None) -> Result:
        """Create and durably store a run, as `start` does, without executing any step: its
        first code step is then due at once, for whoever claims the run next (the HTTP
        server's background worker, or the next tick). Input and `run_id` are checked, and an
        existing run of `run_id` answered, as `start` does."""
        made = self._new_run(name_or_path, input, run_id, None)
        if isinstance(made, Result):
            return made
        workflow, run, now, claim = made  # claimed until its history starts: nobody runs it
        data = run.input
        try:
            events = [event(now, "started", input=data)]
            schedule(run, workflow, now, events, execute=False)
            remember_nonces(run)
            try:
                self.store.create(run, events)
            except LeftoverRecords:
                raise
            except ConflictError:
                return self.existing_start(run.run_id, workflow, data)
            self.manifests.flush()
        finally:
            claim.release()
        return Result(run, workflow, [])

    def _new_run(self, name_or_path: str, input: Any, run_id: str | None,
                 parent: dict[str, Any] | None,
                 ) -> Result | tuple[Workflow, Run, datetime, ExecutionClaim]:
        """What `start` and `create` share: check the id and the input, answer an existing run
        (a Result), else build the new run and claim it (ConflictError if another process
        holds the claim)."""
        if run_id is not None:
            check_run_id(run_id)
        workflow = self.workflow(name_or_path)
        data = {} if input is NO_INPUT else input
        if run_id is not None and self.store.exists(run_id):  # (its input was checked)
            return self.existing_start(run_id, workflow, data)
        _schema.validate(workflow.input_schema, data, f"input of workflow '{workflow.name}'")
        now = self.clock.now()
        run = Run(
            run_id=run_id or new_run_id(now), workflow=workflow.name, input=data,
            created_at=to_iso(now), updated_at=to_iso(now), manifest_path=workflow.path,
            code_hash=dict(workflow.code_hash),
            steps={sid: StepState() for sid in workflow.steps}, parent=parent,
        )
        claim = self.claim(run.run_id)
        if claim is None:
            raise ConflictError(f"run {run.run_id} is busy: another process is starting it")
        return workflow, run, now, claim

    def existing_start(self, run_id: str, workflow: Workflow, data: Any) -> Result:
        """A start (or create) of a run id that exists: the run unchanged, with a warning,
        if it is the same workflow and input; ConflictError otherwise."""
        run = self.store.load(run_id)
        if run.workflow != workflow.name or not same_json(run.input, data):
            raise ConflictError(
                f"run {run_id} already exists with a different "
                f"{'workflow' if run.workflow != workflow.name else 'input'}; "
                "choose another --run-id"
            )
        return Result(run, workflow, [f"run {run_id} already exists; showing it unchanged"])

    def cancel(self, run_id: str, reason: str | None = None,
               check: Callable[[Run], None] | None = None) -> Result:
        """Cancel a run that has not finished; a step executing right now finishes first. Its
        open child runs are cancelled and its parent told.

        `check` may refuse the cancel (by raising) after the run is loaded under its lock."""
        check_run_id(run_id)
        self.store.load(run_id)  # no such run, or unreadable: say so before creating a lock file
        with self.store.lock(run_id):
            run = self.store.load(run_id)
            if check is not None:
                check(run)
            now = self.clock.now()
            events: Events = []
            cancel_run(run, now, reason, events)
            if run.inbox:
                settle_inbox(run, self.workflow_of(run, []), now, events)
            run.updated_at = to_iso(now)
            self.store.save(run, events)
        warnings: list[str] = []
        after_change(self, run, warnings)
        return Result(run, None, warnings)

    # -- the execution loop --------------------------------------------------------------------

    def transition(
        self, run_id: str, workflow: Workflow, mutate: Mutation, *, execute: bool,
        durable: bool = True, current: Run | None = None, claim: ExecutionClaim | None = None,
    ) -> tuple[Run, str | None]:
        """Load, mutate, schedule and save the run under its lock, with the history events of
        the change; one durable write (with `durable=False`, a caller holding the claim only
        records the step it starts next; `current`: the run as loaded by the caller, unchanged
        since, if it still is the state). `claim`, the caller's claim on the run, is given up
        with the save when no step follows (`Store.save` with `release`: the caller then need
        not look at the run again, see `execute_loop`)."""
        with self.store.lock(run_id):
            run = self.store.load(run_id, known=current)
            events: Events = []
            mutate(run, events)
            now = self.clock.now()  # after the mutation's own events: history stays in time order
            settle_inbox(run, workflow, now, events)
            step = None
            if run.status not in FINISHED:
                step = schedule(run, workflow, now, events, execute=execute)
            else:
                run.running_since = None
            remember_nonces(run)
            run.updated_at = to_iso(now)
            if step is None:  # nothing more executes here (in a tick: before its batch closes)
                self.store.save(run, events, durability=Durability.BATCH,
                                release=claim)  # and the claim goes with it
            else:  # with `durable=False`, the step's outcome is the durable write
                self.store.save(run, events, durability=Durability.COMMIT if durable
                                else Durability.STEP_START)
        return run, step

    def execute_loop(
        self, run: Run, workflow: Workflow, claim: ExecutionClaim, step: str | None,
        warnings: list[str], *, released: bool = False,
    ) -> Result:
        """Execute steps one after another while this process holds the claim (`released`:
        it went with the save that left no `step`, see `transition`)."""
        run_id = run.run_id
        try:
            while step is not None and run.status == RUNNING:
                if is_composite(workflow.steps.get(step)):
                    run, step = execute_composite(self, run, workflow, step)
                    released = False
                    continue
                outcome = execute(
                    self.handler(workflow, step), run, step,
                    lambda nonce, s=step: self.links.links(run_id, s, nonce, workflow),  # type: ignore[misc]
                    self.clock.now, lambda records: self.store.append_log(run_id, records),
                    event_url=lambda name: self.links.event_url(run_id, name),
                    route_problem=functools.partial(route_problem, workflow.steps[step]),
                )
                if outcome.output_lost:
                    self.note(output_lost_warning(run_id, step, outcome.output_lost, self.command))

                def record(r: Run, events: Events, s: str = step, o: Any = outcome) -> None:
                    apply_outcome(r, workflow, s, o, self.clock.now(), events)

                # Stopping (tick --watch got SIGTERM): record the outcome without starting the
                # next step; the run stays due at once, so the next tick continues it.
                stopping = self.should_stop()
                # `run` is the state as this process last wrote it (step code got copies)
                run, step = self.transition(run_id, workflow, record, execute=not stopping,
                                            current=run, claim=claim)
                released = step is None  # the claim went with this save
                if stopping:
                    return Result(run, workflow, warnings)
        finally:
            claim.release()  # (nothing more if it went with the last save)
        if released:  # let go with the last save, under the run's lock: nothing was missed
            return Result(run, workflow, warnings)
        return self.continue_if_woken(run, workflow, warnings)

    def claim(self, run_id: str) -> ExecutionClaim | None:
        """Become the run's executor: a claim this tick acquired for it and has not used yet,
        else a new one from the store (None if another holder has the run). StateError,
        before anything is claimed or written, if the store's URL key is damaged."""
        self.links.ready()
        reserved = self.reserved.pop(run_id, None)
        return reserved if reserved is not None else self.store.claim(run_id)

    def continue_if_woken(self, run: Run, workflow: Workflow, warnings: list[str],
                          patient: bool = False) -> Result:
        """After letting the claim go, pick up work another process recorded meanwhile.

        `patient`: this process changed the run while another held its claim. A holder with
        no step executing is about to let go (a resume that lost a race to this one, and
        releases the claim it took before finding that out), so the claim is tried again for a
        moment rather than leaving the run to the next tick."""
        if run.finished:  # no process moves a finished run on: no need to read it again
            return Result(run, workflow, warnings)
        for attempt in range(_CLAIM_ATTEMPTS if patient else 1):
            if attempt:
                time.sleep(_CLAIM_PAUSE_SECONDS * attempt)
            latest = self.store.load(run.run_id, known=run)  # re-read only if it changed
            if latest.status != RUNNING or any(s.status == RUNNING
                                               for s in latest.steps.values()):
                break  # finished or paused, or executing elsewhere: nothing to pick up
            claim = self.claim(run.run_id)
            if claim is not None:
                try:
                    latest, step = self.transition(
                        run.run_id, workflow, lambda r, e: None, execute=True, claim=claim)
                except BaseException:
                    claim.release()
                    raise
                return self.execute_loop(latest, workflow, claim, step, warnings,
                                         released=step is None)
            run = latest
        return Result(latest, workflow, warnings)

    def handler(self, workflow: Workflow, step: str) -> Callable[..., Any]:
        """The function of a code step; one that raises LookupError (the step fails) if it
        cannot be found."""
        try:
            return _stepcode.handler_for(workflow, step)
        except WfrunError as exc:
            message = exc.message

            def missing(ctx: Any) -> None:
                raise LookupError(message)

            return missing

    def note(self, warning: str) -> None:
        """Keep a warning about a step this thread executed for the command that executed it
        (`take_notes`), however deep below the command's run the step was."""
        self._kept().append(warning)

    def take_notes(self) -> list[str]:
        """The warnings `note` kept in this thread since they were last taken."""
        kept = self._kept()
        taken = list(kept)
        kept.clear()
        return taken

    def _kept(self) -> list[str]:
        kept: list[str] | None = getattr(self._notes, "kept", None)
        if kept is None:
            kept = self._notes.kept = []
        return kept

    def drive(self, run_id: str, workflow: Workflow, mutate: Mutation,
              warnings: list[str]) -> Result:
        """Apply a mutation and, if this process can claim the run, execute what follows."""
        claim = self.claim(run_id)
        if claim is None:
            run, _ = self.transition(run_id, workflow, mutate, execute=False)
            self.manifests.flush()
            if run.status == RUNNING:  # the holder may have just let go (a resume that lost a race)
                result = self.continue_if_woken(run, workflow, warnings, patient=True)
                if result.run.status != RUNNING:
                    return result
                run = result.run
                warnings.append(
                    f"run {run_id} is being executed by another process; it continues there "
                    "(or at the next tick)"
                )
            return Result(run, workflow, warnings)
        def recovering(r: Run, events: Events) -> None:
            mutate(r, events)
            # this process holds the claim: a step left executing lost its executor (a branch
            # of the run interrupted by a crash), and executes again as recovered
            recover_interrupted(r, self.clock.now(), events)

        try:
            run, step = self.transition(run_id, workflow, recovering, execute=True, claim=claim)
            self.manifests.flush()
        except BaseException:
            claim.release()
            raise
        try:
            return self.execute_loop(run, workflow, claim, step, warnings, released=step is None)
        except ClaimLost as exc:  # the mutation was saved: another process goes on with the run
            return self.taken_over(run_id, workflow, warnings, exc)

    def taken_over(self, run_id: str, workflow: Workflow, warnings: list[str],
                   lost: ClaimLost) -> Result:
        """The run as it is now, after another process took it over from this one while it
        executed the steps that followed this command's own (saved) change; said as a
        warning, since what the command was asked to do is done."""
        warnings.append(lost.message)
        return Result(self.store.load(run_id), workflow, warnings)
