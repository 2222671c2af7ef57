"""The engine: start, resume, cancel and tick; the only place that decides what happens next.

`Engine` is the public face; the doing (load, claim, change, execute, save) is the runner's
(`_runner.py`), and each command's own logic is in the module named for it, which receives
the runner as an argument.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from wfrun._specs import Workflow
from wfrun.clock import Clock
from wfrun.durations import to_iso
from wfrun.errors import UsageError, WfrunError
from wfrun.ids import check_run_id
from wfrun.model import RUNNING, Run
from wfrun.store.abc import Store

from ._callbacks import (
    Decoy,
    OpenLink,
    accept_cancel,
    accept_resume,
    continue_run,
    link_expects,
    open_link,
)
from ._composite import has_composites
from ._deferred_manifests import DeferredManifestCache
from ._document import retry_error, run_document
from ._links import LinkMaker
from ._result import NO_INPUT, Result, TickReport
from ._resume import ResumeRequest, resume
from ._runner import Runner

if TYPE_CHECKING:
    import threading

    from ._events import EventLink, SendResult

DEFAULT_BASE_URL = "http://127.0.0.1:8787"


def _checked_base_url(url: str, given: bool) -> str:
    """The base of the links runs record (resume, cancel, event URLs): an http(s) URL with a
    host, or UsageError before anything is written."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        where = "the base URL" if given else "WFRUN_BASE_URL"
        raise UsageError(f"{where} {url!r} is not an http:// or https:// URL with a host "
                         "(e.g. https://wf.example.com): the links runs record start with it")
    return url


class Engine:
    """Runs workflows against a store, with time from a clock."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        workflows_dir: str = "workflows",
        base_url: str | None = None,
        command: str = "wfrun",
    ) -> None:
        self._runner = Runner(
            store, clock, workflows_dir=workflows_dir, command=command,
            base_url=_checked_base_url(base_url or os.environ.get("WFRUN_BASE_URL")
                                       or DEFAULT_BASE_URL, given=base_url is not None))

    # -- settings ------------------------------------------------------------------------------

    @property
    def store(self) -> Store:
        """Where runs are kept."""
        return self._runner.store

    @property
    def clock(self) -> Clock:
        """Where the time comes from."""
        return self._runner.clock

    @property
    def workflows_dir(self) -> str:
        """Where workflows are found by name."""
        return self._runner.workflows_dir

    @property
    def command(self) -> str:
        """How users invoke wfrun (in the commands that links and messages suggest)."""
        return self._runner.command

    @property
    def base_url(self) -> str:
        """What links start with (set it before the first link is made)."""
        return self._runner.base_url

    @base_url.setter
    def base_url(self, value: str) -> None:
        self._runner.base_url = value

    @property
    def should_stop(self) -> Callable[[], bool]:
        """Asked between steps: True makes the execution stop (tick --watch on SIGTERM)."""
        return self._runner.should_stop

    @should_stop.setter
    def should_stop(self, value: Callable[[], bool]) -> None:
        self._runner.should_stop = value

    @property
    def manifests(self) -> DeferredManifestCache:
        """Parsed manifests, handed to the store once a command changed state."""
        return self._runner.manifests

    @property
    def links(self) -> LinkMaker:
        """Makes resume and cancel links (reads the store's URL key on first use)."""
        return self._runner.links

    # -- workflows -----------------------------------------------------------------------------

    def workflow(self, name_or_path: str, *, check_code: bool = True) -> Workflow:
        """Find and load a workflow by name or manifest path (with its child workflows)."""
        return self._runner.workflow(name_or_path, check_code=check_code)

    def workflow_of(self, run: Run, warnings: list[str]) -> Workflow:
        """The current code of a run's workflow; warns if it changed since the run started."""
        return self._runner.workflow_of(run, warnings)

    def document(self, result: Result, history: bool = False) -> dict[str, Any]:
        """The run document of SPEC §4 for a command's result."""
        events = self.store.read_history(result.run.run_id) if history else None
        doc = run_document(result.run, result.workflow, self.links, result.warnings, events)
        if result.run.parent is not None or has_composites(result.run):
            from ._tree import extend_document  # imported on use: nested runs' modules

            extend_document(self, doc, result.run, result.workflow)
        return doc

    # -- commands ------------------------------------------------------------------------------

    def _since(self) -> str:
        return to_iso(self.clock.now())

    def _noted(self, result: Result, since: str | None = None) -> Result:
        """`result` with the warnings noted while its command executed steps (`Runner.note`)
        and, given `since`, one for each step of its run, its iterations and its child runs
        that began waiting for a retry at or after `since` (what it raised, SPEC §5), as
        `tick` says them of the runs it advanced."""
        result.warnings.extend(self._runner.take_notes())
        run = result.run
        if since is None or run.finished or not (
                has_composites(run) or any(map(retry_error, run.steps.values()))):
            return result
        from ._tree import retry_notes  # imported on use, as for `document`

        result.warnings.extend(retry_notes(self._runner, run, since, self.command))
        return result

    def start(self, name_or_path: str, input: Any = NO_INPUT, run_id: str | None = None,
              parent: dict[str, Any] | None = None) -> Result:
        """Create a run and execute it until it completes, fails or pauses (input: `{}` if
        not given; an explicit None is kept as JSON null). `parent` makes it the child run
        of a `workflow:` step (the parent records it)."""
        since = self._since()
        result = self._runner.start(name_or_path, input, run_id, parent)
        return result if parent is not None else self._noted(result, since)

    def create(self, name_or_path: str, input: Any = NO_INPUT, run_id: str | None = None) -> Result:
        """Create and durably store a run, as `start` does, without executing any step: its
        first code step is then due at once, for whoever claims the run next (the HTTP
        server's background worker, or the next tick). Input and `run_id` are checked, and an
        existing run of `run_id` answered, as `start` does."""
        return self._runner.create(name_or_path, input, run_id)

    def resume(
        self,
        run_id: str,
        data: Any = None,
        step: str | None = None,
        action: str | None = None,
        request: dict[str, Any] | None = None,
        *,
        label: str | None = None,
        approver: str | None = None,
    ) -> Result:
        """Hand data to a suspended (or rerun-pending) step and continue the run. `step` may
        be an address (`review[1]`, `review/approve`); `label` names the one open
        suspension with that label instead; `approver` decides on a step with `approvals:`."""
        since = self._since()
        return self._noted(resume(self._runner, ResumeRequest(
            run_id, data, step, action, label=label, request=request, approver=approver)), since)

    def cancel(self, run_id: str, reason: str | None = None,
               check: Callable[[Run], None] | None = None) -> Result:
        """Cancel a run that has not finished; a step executing right now finishes first.

        `check` may refuse the cancel (by raising) after the run is loaded under its lock."""
        return self._noted(self._runner.cancel(run_id, reason, check))  # its parent may go on

    def retry(self, run_id: str, step: str | None = None, reason: str | None = None) -> Result:
        """Re-execute a failed run from its failed step (or `step`), in the same run."""
        from ._rewind import retry  # imported on use: keeps every other command's start-up lean

        since = self._since()
        return self._noted(retry(self._runner, run_id, step, reason), since)

    def fork(self, run_id: str, step: str, input: Any = None, *, replace_input: bool = False,
             new_id: str | None = None, reason: str | None = None) -> Result:
        """A new run keeping the outputs of the steps not downstream of `step`, run from it."""
        from ._rewind import fork

        since = self._since()
        return self._noted(fork(self._runner, run_id, step, input=input,
                                        replace_input=replace_input, new_id=new_id,
                                        reason=reason), since)

    def tick(self, limit: int | None = None, workers: int = 1,
             schedules: Collection[str] | None = None) -> TickReport:
        """Fire due timers, recover abandoned runs, and continue each until it pauses; with
        `workers` > 1, in that many forked processes when many runs are due (only from a
        single-threaded process: fork copies no other thread). `schedules`: the scheduled
        workflows whose schedule fires (None: every one; `wfrun.testing` fires only those a
        test asks for)."""
        from ._tick import tick

        report = tick(self._runner, limit, workers, schedules)
        report.warnings.extend(self._runner.take_notes())  # of a run whose advance then failed
        return report

    # -- doctor --------------------------------------------------------------------------------

    def has_state(self) -> bool:
        """Whether the store holds wfrun's state at all (its directory or tables were made);
        StateError for a place that cannot hold it (a file, a missing database schema)."""
        return self.store.has_state()

    def store_label(self) -> str | None:
        """How messages name the store when it knows better than its URL (`Store.label`)."""
        return self.store.label()

    def check(self) -> tuple[int, list[dict[str, str]]]:
        """Examine everything stored and change nothing (`wfrun doctor`): the store's own check
        (`Store.check`: runs, indexes, keys, ...) and each schedule's state. A store that was
        never set up has nothing to check, and is not created by looking."""
        if not self.has_state():
            return 0, []
        from ._schedule_reads import state_problems

        runs, problems = self.store.check()
        return runs, problems + state_problems(self.store)

    # -- schedules (`wfrun schedules`, SPEC §11) -----------------------------------------------

    def schedules(self) -> list[dict[str, Any]]:
        """Each schedule of the workflows directory: its `wfrun schedules --json` row (plus
        `exit_code` when its `error` is set), by workflow name, one for every manifest with a
        `schedule:`, one that cannot be loaded included."""
        from ._schedule_control import listing

        return listing(self)

    def pause_schedule(self, workflow: str, paused: bool) -> tuple[dict[str, Any], bool]:
        """Pause (or unpause) the schedule of `workflow`: its row, and whether it changed.
        Unpausing does not catch up the fire times missed while paused."""
        from ._schedule_control import pause

        return pause(self, workflow, paused)

    def has_schedules(self) -> bool:
        """Whether any workflow of the workflows directory may declare a `schedule:` (read
        cheaply: a tick with none needs no state directory)."""
        from ._timetable import any_schedule

        return any_schedule(self)

    def schedule_names(self) -> list[str]:
        """The names of the workflows of the workflows directory with a schedule that loads
        (those a tick keeps a schedule state for), sorted."""
        from ._timetable import schedule_names

        return schedule_names(self)

    def wait_for_work(self, timeout: float, stop: threading.Event) -> None:
        """Block until a run may have become due (on PostgreSQL: another process committed a
        new due time, or the earliest due time came), `stop` is set, or `timeout` seconds
        pass: what `tick --watch` does between ticks."""
        self.store.wait_for_work(timeout, stop)

    # -- links (wfrun serve) -------------------------------------------------------------------

    def open_link(self, run_id: str, step: str, verb: str, token: str,
                  decoy: Decoy | None = None) -> OpenLink:
        """The run and pause a resume or cancel link's token opens; NotFoundError (with no
        detail) if it opens none. With `decoy`, an unknown run costs what a wrong token does."""
        return open_link(self._runner, run_id, step, verb, token, decoy)

    def link_expects(self, link: OpenLink) -> tuple[Any, list[str], str, str | None]:
        """What a resume link takes: the schema its data must match (an ask's included), the
        step's known actions, the workflow's description, and why a resume is refused when
        the step no longer exists in the workflow (None: it exists)."""
        return link_expects(self, link)

    def accept_resume(self, run_id: str, step: str, token: str, data: Any, action: str | None,
                      request: dict[str, Any]) -> Result:
        """Check and durably record a link's resume without executing any step (`Result.
        accepted`: kept in the inbox of a step still executing); `continue_run` goes on."""
        return accept_resume(self._runner, run_id, step, token, data, action, request)

    def accept_cancel(self, run_id: str, step: str, token: str, reason: str | None) -> Result:
        """Cancel the run if the cancel link's pause is still open (checked under the lock)."""
        return self._noted(accept_cancel(self._runner, run_id, step, token, reason))

    # -- events (`wfrun send`, POST /runs/RUN/events/NAME) ---------------------------------------

    def send(self, run_id: str, name: str, data: Any = None,
             request: dict[str, Any] | None = None, *, execute: bool = True,
             fields: dict[str, list[str]] | None = None) -> SendResult:
        """Send event `name` to a run: a step waiting for it (`wait_for_event`) takes it and the
        run continues, executing what follows here unless `execute` is False (then only
        recorded, as a link's resume is); otherwise it is kept in the run's inbox, in order,
        for the next step that waits for it (`Result.accepted`). The result also says what
        became of the event (`status`: kept or taken, and the `step` that took it).

        Before anything is written: UsageError for a bad run id or event name, NotFoundError
        for no such run, ConflictError for a finished run, SchemaViolation for data that the
        waiting step's schema refuses.

        `fields`: the text fields (a form's, or query parameters) `data` was read from; an
        event kept until a step waits for it is read from them again, typed as that step's
        schema asks (`wfrun._textdata`)."""
        from ._events import send  # imported on use: keeps every other command's start-up lean

        since = self._since()
        sent = send(self._runner, run_id, name, data, request, execute=execute, fields=fields)
        self._noted(sent, since)
        return sent

    def open_event(self, run_id: str, name: str, token: str) -> EventLink:
        """The run an event URL's token opens; NotFoundError (with no detail) for a token that
        is not this run's for `name`, or a run that does not exist (checked the same way)."""
        from ._events import open_event

        return open_event(self._runner, run_id, name, token)

    def continue_run(self, run_id: str) -> Result:
        """Execute what an accepted resume made ready, if no other process is executing the
        run (`wfrun serve` calls it in a background worker after answering 202)."""
        since = self._since()
        return self._noted(continue_run(self._runner, run_id), since)

    # -- reading -------------------------------------------------------------------------------

    def get(self, run_id: str) -> Result:
        """Load a run and its workflow (if it can still be found) for display."""
        check_run_id(run_id)
        run = self.store.load(run_id)
        warnings: list[str] = []
        try:
            workflow: Workflow | None = self.workflow_of(run, warnings)
        except WfrunError as exc:
            workflow = None
            warnings.append(f"workflow '{run.workflow}' cannot be loaded: {exc.message}")
        if run.status == RUNNING and not self.store.is_claimed(run_id):
            warnings.append(
                f"run {run_id} was interrupted: the process executing it is gone; "
                "the next 'wfrun tick' recovers it"
            )
        return Result(run, workflow, warnings)


__all__ = ["NO_INPUT", "Decoy", "Engine", "OpenLink", "Result"]
