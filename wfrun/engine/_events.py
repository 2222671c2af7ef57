"""Events (SPEC §3): a step that waits for a named event, events sent to a run (`wfrun send`,
`POST /runs/RUN/events/NAME?token=...`), and the run's inbox keeping those nobody waits for yet.

Events share the run's inbox with early resumes (`_inbox.py`): one mechanism. An event that no
step waits for is appended, in the order events arrive, as `{"kind": "event", "name", "data",
"at", "source", "request"?}`. After every state change (`settle_inbox`) each kept event, oldest
first, is taken by the first step, in manifest order, that waits for its name; so an event sent
before its wait exists is never lost, and each is taken by exactly one wait. A sent event that
a step waits for is taken in the very state change that records it.

A waiting step is `suspended` with the pause `{"kind": "event", "event": NAME, "schema"?,
"since", "due_at", "on_timeout", "nonce"}`: its deadline is handled by `tick` as a suspension's
is (`on_timeout`: cancel, resume with no data, fail). The event's data becomes the step's
`resume_data`; its output stays the return value of its execution. The schema (given to
`wait_for_event`) is kept in the pause, so a sent event is checked without running any code,
before anything is stored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfrun import _schema
from wfrun._specs import Workflow
from wfrun.durations import to_iso
from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.ids import check_run_id
from wfrun.model import Run

from ._address import join
from ._composite import has_composites
from ._event_waits import EVENT, check_event_name, consume_events, event_schema, waiting_steps
from ._history import Events, event
from ._result import Result

if TYPE_CHECKING:  # (the inbox imports this module, and the runner's modules import the inbox)
    from ._runner_api import Reader, RunnerAPI

KEPT = "kept"  # what became of a sent event: kept in the inbox
TAKEN = "taken"  # taken by a waiting step


class SendResult(Result):
    """A run after `send`: the event's name and what became of it (`status` kept or taken, and
    the `step` that took it, by its path from the run). `taker` is the run whose step took it
    (the run itself, or a child run below it), as it is then. `accepted` is True when the
    event was kept in the inbox."""

    __slots__ = ("event", "status", "step", "taker")

    def __init__(self, result: Result, name: str, step: str | None,
                 taker: Run | None = None) -> None:
        super().__init__(result.run, result.workflow, result.warnings, accepted=step is None)
        self.event = name
        self.step = step
        self.status = KEPT if step is None else TAKEN
        self.taker = taker if taker is not None or step is None else result.run


class EventLink:
    """An event URL whose token is its run's: the run as loaded and the event's name (and, when
    no step of the run waits for it, the child run below it that does: `send` gives it there)."""

    __slots__ = ("_below", "_reader", "name", "run")

    def __init__(self, run: Run, name: str, reader: Reader | None = None) -> None:
        self.run = run
        self.name = name
        self._reader = reader
        self._below: tuple[Run, str] | bool | None = False  # False: not looked for yet

    def _waiting_below(self) -> tuple[Run, str] | None:
        """(child run, address of its node) below the run whose step waits for the event."""
        if self._below is False:
            self._below = None
            if self._reader is not None and has_composites(self.run):
                from ._tree import event_waiter  # imported on use: nested runs' modules

                found = event_waiter(self._reader, self.run, self.name)
                if found is not None:
                    self._below = (self._reader.store.load(found[0]), found[1])
        return self._below if isinstance(self._below, tuple) else None

    @property
    def waiting(self) -> list[str]:
        """The steps waiting for the event, the one that takes it next first (by their path
        from the run, for a child run's)."""
        own = waiting_steps(self.run, self.name)
        below = None if own else self._waiting_below()
        if below is None:
            return own
        return [join(below[1], step) for step in waiting_steps(below[0], self.name)]

    @property
    def schema(self) -> Any:
        """The JSON Schema the event's data must match now (None: anything)."""
        below = None if waiting_steps(self.run, self.name) else self._waiting_below()
        return event_schema(below[0] if below else self.run, self.name)

    @property
    def kept(self) -> int:
        """How many events of this name the run's inbox keeps."""
        return sum(1 for e in self.run.inbox if e.get("kind") == EVENT
                   and e.get("name") == self.name)


def _check_data(run: Run, name: str, data: Any, outer: str = "") -> None:
    """SchemaViolation if a step waits for the event with a schema its data does not match
    (`outer`: the address of `run`'s node in the run the event was sent to, for the message)."""
    steps = waiting_steps(run, name)
    schema = (run.steps[steps[0]].pause or {}).get("schema") if steps else None
    if schema is not None:
        _schema.validate(schema, data, f"data of event '{name}' (step '{join(outer, steps[0])}' "
                                       "waits for it)")


def _finished(run: Run, name: str) -> ConflictError:
    return ConflictError(f"run {run.run_id} is {run.status} (at {run.updated_at}); event "
                         f"'{name}' was not sent: a finished run takes no events")


def send(runner: RunnerAPI, run_id: str, name: str, data: Any,
         request: dict[str, Any] | None = None, *, execute: bool = True,
         fields: dict[str, list[str]] | None = None, outer: str = "") -> SendResult:
    """Send event `name` to a run: a step waiting for it takes it in the same state change and
    the run continues (with `execute`, in this process if it can claim the run; else it is
    only recorded); otherwise it is kept in the run's inbox, after those kept before.

    When no step of the run waits for the event but one of a child run below it does, the
    event goes to that child run (`_to_waiting_child`; `outer`: the address of the child's
    node, for messages). Raises UsageError (bad run id or name), NotFoundError (no such run),
    ConflictError (the run is finished) and SchemaViolation (data a waiting step's schema
    refuses) before anything is written."""
    check_run_id(run_id)
    check_event_name(name)
    run = runner.store.load(run_id)
    if run.finished:
        raise _finished(run, name)
    if not waiting_steps(run, name) and has_composites(run):
        forwarded = _to_waiting_child(runner, run, name, data, request, execute, fields, outer)
        if forwarded is not None:
            return forwarded
    _check_data(run, name, data, outer)
    warnings: list[str] = []
    workflow: Workflow = runner.workflow_to_continue(run, warnings)
    source = str((request or {}).get("source") or "cli")
    kept_request = {k: v for k, v in (request or {}).items() if k not in ("body", "source")}
    taker: list[str | None] = [None]

    def mutate(r: Run, events: Events) -> None:
        now = runner.clock.now()
        if r.finished:
            raise _finished(r, name)
        _check_data(r, name, data, outer)  # the steps waiting may have changed since
        entry: dict[str, Any] = {"kind": EVENT, "name": name, "data": data, "at": to_iso(now),
                                 "source": source}
        if kept_request:
            entry["request"] = kept_request
        if fields is not None:
            entry["fields"] = fields
        r.inbox.append(entry)
        events.append(event(now, "event_sent", None, event=name, source=source))
        taker[0] = next((step for e, step in consume_events(r, now, events) if e is entry), None)

    if execute:
        from ._children import after_change

        result = runner.drive(run_id, workflow, mutate, warnings)
        after_change(runner, result.run, result.warnings)
    else:
        changed, _ = runner.transition(run_id, workflow, mutate, execute=False)
        result = Result(changed, workflow, warnings)
    return SendResult(result, name, taker[0])


def open_event(reader: Reader, run_id: str, name: str, token: str) -> EventLink:
    """The run an event URL's token opens. NotFoundError with no detail for anything else: a
    bad run id or name, a token that is not the run's for that name (checked before the store
    is read, so that it costs the same whether the run exists), a run that no longer exists."""
    try:
        check_run_id(run_id)
        check_event_name(name)
    except UsageError:
        raise NotFoundError("not found") from None
    if not reader.links.event_token_matches(run_id, name, token):
        raise NotFoundError("not found")
    try:
        return EventLink(reader.store.load(run_id), name, reader)
    except NotFoundError:
        raise NotFoundError("not found") from None


def _to_waiting_child(runner: RunnerAPI, run: Run, name: str, data: Any,
                      request: dict[str, Any] | None, execute: bool,
                      fields: dict[str, list[str]] | None, outer: str) -> SendResult | None:
    """Send the event to the child run below `run` that waits for it now (the first in
    manifest order), when no step of `run` itself does: the sender needs only the run it
    knows. The result is `run` as it is then, with the full path of the step that took it;
    None if no child run waits for the event (it is then kept in `run`'s inbox)."""
    from ._tree import event_waiter  # imported on use: nested runs' modules

    found = event_waiter(runner, run, name)
    if found is None:
        return None
    child_id, address = found
    taken = send(runner, child_id, name, data, request, execute=execute, fields=fields,
                 outer=join(outer, address))
    warnings: list[str] = []
    top = runner.store.load(run.run_id)
    result = Result(top, runner.workflow_of(top, warnings), [*taken.warnings, *warnings])
    step = join(address, taken.step) if taken.step is not None else None
    return SendResult(result, name, step, taken.taker)
