"""HTTP callbacks: check a link's token, record a resume or cancel durably, continue the run later.

`wfrun serve` answers 202 once `accept_resume` returns (the resume is in the snapshot), then
calls `continue_run` in a background worker. If the process dies in between, the run is left
`running` with no step executing, which makes it due at once: the next `tick` continues it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from wfrun import _schema, loader
from wfrun.errors import CodeChangedError, ConflictError, NotFoundError, UsageError
from wfrun.ids import check_run_id
from wfrun.model import RUNNING, SUSPENDED, WAITING, Run

from ._actions import check_resume_action
from ._ask import answer_ask, ask_nonce
from ._children import after_change
from ._composite import node_of, step_of
from ._inbox import buffer_resume, executing_nonce
from ._links import VERBS, remember_nonces, token_matches
from ._schedule import Events
from ._transitions import apply_resume

if TYPE_CHECKING:
    from .core import Engine, Result

ACTIVE = "active"
EARLY = "early"  # the links of a step still executing: a resume is kept until it pauses
ENDED = "ended"


def token_state(key: bytes, run: Run, step: str, verb: str, token: str) -> str | None:
    """ACTIVE if `token` opens the step's current pause for `verb`, EARLY if it is a link the
    step's current execution holds (it has not paused yet), ENDED if it opened an earlier
    pause of that step, None if it is not a token of this run, step and verb."""
    state = node_of(run, step)  # a step, or a foreach iteration (`step[2]`)
    if state is None or verb not in VERBS or not token:
        return None
    current = (state.pause or {}).get("nonce")
    if current and state.status in (SUSPENDED, WAITING) and token_matches(
            key, token, verb, run.run_id, step, current):
        return ACTIVE
    executing = executing_nonce(state)
    if executing and token_matches(key, token, verb, run.run_id, step, executing):
        return EARLY
    for nonce in state.nonces:
        if nonce != current and token_matches(key, token, verb, run.run_id, step, nonce):
            return ENDED
    return None


def ended_message(run: Run, step: str) -> str:
    """Why a link of an ended pause no longer works (told only to holders of a real token)."""
    state = node_of(run, step) or run.steps[step]
    if state.resumed_at:
        return (f"step '{step}' of run {run.run_id} was already resumed at {state.resumed_at}; "
                "its data is kept and this link no longer works")
    if run.finished:
        return f"run {run.run_id} is {run.status}; this link no longer works"
    return (f"the pause of step '{step}' of run {run.run_id} has ended (the step is "
            f"{state.status}); this link no longer works")


def open_link(engine: Engine, run_id: str, step: str, verb: str, token: str,
              decoy: Callable[[Engine, str], Run] | None = None) -> tuple[Run, str]:
    """Load the run a link points to and say whether its token is ACTIVE or ENDED.

    Raises NotFoundError, with no detail, for an invalid run id, an unknown run or step, or a
    token that is not this run's, step's and verb's. For an unknown run, the token is checked
    against `decoy(engine, step)` first, so that it costs what a wrong token does."""
    try:
        check_run_id(run_id)
        run = engine.store.load(run_id)
    except (NotFoundError, UsageError):
        if decoy is not None:  # no timing oracle for which runs exist
            token_state(engine.store.secret_key(), decoy(engine, step), step, verb, token)
        raise NotFoundError("not found") from None
    state = token_state(engine.store.secret_key(), run, step, verb, token)
    if state is None:
        raise NotFoundError("not found")
    return run, state


def accept_resume(
    engine: Engine, run_id: str, step: str, token: str, data: Any, action: str | None,
    request: dict[str, Any],
) -> Result:
    """Validate and durably record a resume without executing any step.

    Invalid data raises SchemaViolation and writes nothing; a token whose pause ended
    meanwhile (a concurrent resume won) raises ConflictError. The run is left `running` (due
    at once) if a code step is to execute next: `continue_run` or the next tick executes it."""
    from .core import Result

    run = engine.store.load(run_id)
    warnings: list[str] = []
    workflow = engine.workflow_of(run, warnings)
    if step_of(step) not in workflow.steps:
        raise CodeChangedError(
            f"step '{step}' of run {run_id} no longer exists in workflow '{run.workflow}' "
            f"({workflow.path}); restore it to resume this run"
        )
    spec = workflow.steps[step_of(step)]
    if spec.resume_schema is not None:
        loader.check_schemas(workflow)
        _schema.validate(spec.resume_schema, data, f"resume data for step '{step}'")
    check_resume_action(workflow, step, action, run_id, node_of(run, step))
    key = engine.store.secret_key()

    accepted = False

    def mutate(r: Run, events: Events) -> None:
        nonlocal accepted
        remember_nonces(r)
        found = token_state(key, r, step, "resume", token)
        if found == EARLY and step == spec.id:
            buffer_resume(r, step, data, action, request, engine.clock.now(), events)
            accepted = True
            return
        if found != ACTIVE:
            raise ConflictError(ended_message(r, step))
        now, nonce = engine.clock.now(), ask_nonce(node_of(r, step))
        if step != spec.id:  # a foreach iteration
            index = int(step[len(spec.id) + 1:-1])
            from ._iteration_pauses import apply_iteration_resume  # foreach only: imported late

            apply_iteration_resume(r, workflow, spec.id, index, data, action, request, now,
                                   events, nonce)
        elif not answer_ask(r, spec, data, action, request, now, events, nonce):
            apply_resume(r, spec, data, action, request, now, events)

    run, _ = engine._transition(run_id, workflow, mutate, execute=False)
    engine.store.sync_history(run_id)
    return Result(run, workflow, warnings, accepted=accepted)


def accept_cancel(engine: Engine, run_id: str, step: str, token: str, reason: str | None) -> Result:
    """Cancel the run if the cancel token's pause is still open (checked under the lock)."""
    key = engine.store.secret_key()

    def still_open(run: Run) -> None:
        if token_state(key, run, step, "cancel", token) not in (ACTIVE, EARLY):
            raise ConflictError(ended_message(run, step))

    return engine.cancel(run_id, reason, check=still_open)


def continue_run(engine: Engine, run_id: str) -> Result:
    """Execute what an accepted resume made ready, if no other process is executing the run."""
    from .core import Result

    run = engine.store.load(run_id)
    warnings: list[str] = []
    if run.status != RUNNING:
        after_change(engine, run, warnings)  # a child run the resume finished: tell its parent
        return Result(run, None, warnings)
    workflow = engine.workflow_of(run, warnings)
    result = engine._continue_if_woken(run, workflow, warnings)
    after_change(engine, result.run, result.warnings)
    return result
