"""`retry` (re-execute a failed run from a step, in place) and `fork` (a new run from a step)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

from wfrun import _schema
from wfrun._specs import Workflow
from wfrun.durations import to_iso
from wfrun.errors import CodeChangedError, ConflictError, NotFoundError, WfrunError
from wfrun.ids import check_run_id, new_run_id
from wfrun.model import CANCELLED, COMPLETED, FAILED, RUNNING, SETTLED, Run, StepState

from ._schedule import Events, event, schedule

if TYPE_CHECKING:
    from .core import Engine, Result


def _step_of(run: Run, workflow: Workflow, step: str) -> str:
    """`step` if the current workflow has it; NotFoundError or CodeChangedError otherwise."""
    if step in workflow.steps:
        return step
    if step in run.steps:
        raise CodeChangedError(
            f"step '{step}' of run {run.run_id} no longer exists in workflow '{run.workflow}' "
            f"({workflow.path}); restore it, or choose another step"
        )
    raise NotFoundError(
        f"run {run.run_id} has no step '{step}' (steps: {', '.join(workflow.steps)})"
    )


def _fresh(old: StepState, keep_answers: bool, keep_iterations: bool = False) -> StepState:
    """A step made pending again; it keeps its `runs` (they count every execution), and with
    `keep_iterations` its completed foreach iterations (the others made pending again)."""
    fresh = StepState(runs=old.runs, started_at=old.started_at,
                      answers=list(old.answers) if keep_answers else [])
    if keep_iterations and old.iterations is not None:
        fresh.iterations = [it if it.status == COMPLETED else _fresh(it, keep_answers=True)
                            for it in old.iterations]
    return fresh


def rewind(run: Run, workflow: Workflow, step: str) -> list[str]:
    """Make `step`, every step downstream of it, and every step the failure ended pending.

    A step that had not completed (failed, cancelled) keeps the answers of its `ask()`s, so a
    retry does not ask again what was already answered, and, for a foreach step whose list is
    not made again, its completed iterations, so that only the others execute again; a
    completed step starts afresh. Returns the ids of the steps made pending, in manifest order.
    """
    targets = {step} | workflow.downstream(step)
    reset = []
    for sid, state in run.steps.items():
        if sid in targets or state.status in (FAILED, CANCELLED):
            spec = workflow.steps.get(sid)
            unfinished = state.status != COMPLETED
            source_kept = spec is not None and spec.foreach is not None \
                and spec.foreach not in targets
            run.steps[sid] = _fresh(state, keep_answers=unfinished,
                                    keep_iterations=unfinished and source_kept)
            reset.append(sid)
    return reset


def retry(engine: Engine, run_id: str, step: str | None, reason: str | None) -> Result:
    """Re-execute a failed run from its failed step (or `step`) in the same run."""
    check_run_id(run_id)
    run = engine.store.load(run_id)
    if run.status != FAILED:
        raise ConflictError(
            f"run {run_id} is {run.status}, not failed; only a failed run can be retried "
            f"(to execute it again from a step as a new run, use 'wfrun fork {run_id} --from STEP')"
        )
    warnings: list[str] = []
    workflow = engine.workflow_of(run, warnings)
    if step is None:
        step = (run.error or {}).get("step")
        if not step:
            raise ConflictError(
                f"run {run_id} failed without naming a step; choose one with --step"
            )
    target = _step_of(run, workflow, step)
    warnings.extend(_parent_stays_failed(engine, run))

    def mutate(r: Run, events: Events) -> None:
        if r.status != FAILED:  # another retry won the race
            raise ConflictError(
                f"run {run_id} is {r.status} (since {r.updated_at}); it was retried meanwhile"
            )
        now = engine.clock.now()
        reset = rewind(r, workflow, target)
        r.status, r.error, r.output = RUNNING, None, None
        r.running_since = to_iso(now)
        events.append(event(now, "retried", target, source="cli", reason=reason, reset=reset))

    return engine._drive(run_id, workflow, mutate, warnings)


def _parent_stays_failed(engine: Engine, run: Run) -> list[str]:
    """A warning when `run` is the child run of a failed parent, which its retry leaves failed."""
    parent = run.parent or {}
    try:
        failed = bool(parent) and engine.store.load(parent["run_id"]).status == FAILED
    except WfrunError:
        return []  # its parent is gone or unreadable: nothing useful to add
    if not failed:
        return []
    return [f"run {run.run_id} is the child run of step '{parent['step']}' of run "
            f"{parent['run_id']}, which stays failed: retrying a child does not continue its "
            f"parent; 'wfrun retry {parent['run_id']}' executes that step again with a new "
            "child run"]


def forked_steps(source: Run, workflow: Workflow, step: str) -> dict[str, StepState]:
    """The new run's steps: copies of the settled steps not downstream of `step`, the rest new."""
    rewound = {step} | workflow.downstream(step)
    steps: dict[str, StepState] = {}
    for sid in workflow.steps:
        old = source.steps.get(sid)
        if sid in rewound or old is None or old.status not in SETTLED:
            steps[sid] = StepState()
        else:
            steps[sid] = StepState.from_dict(json.loads(json.dumps(old.to_dict())))
    return steps


def fork(
    engine: Engine, run_id: str, step: str, *, input: Any, replace_input: bool,
    new_id: str | None, reason: str | None,
) -> Result:
    """Create a run that keeps what happened before `step` in `run_id`, and execute it from there."""

    check_run_id(run_id)
    if new_id is not None:
        check_run_id(new_id)
    source = engine.store.load(run_id)
    warnings: list[str] = []
    workflow = engine.workflow_of(source, warnings)
    target = _step_of(source, workflow, step)
    data = ({} if input is None else input) if replace_input else source.input
    what = "--input" if replace_input else f"input of run {run_id} (replace it with --input)"
    _schema.validate(workflow.input_schema, data, f"{what} for workflow '{workflow.name}'")
    if new_id is not None and engine.store.exists(new_id):
        raise ConflictError(f"run {new_id} already exists; choose another --run-id")
    now: datetime = engine.clock.now()
    run = Run(
        run_id=new_id or new_run_id(now), workflow=workflow.name, input=data,
        created_at=to_iso(now), updated_at=to_iso(now), manifest_path=workflow.path,
        code_hash=dict(workflow.code_hash), steps=forked_steps(source, workflow, target),
        running_since=to_iso(now),
    )
    claim = engine.store.claim(run.run_id)
    if claim is None:
        raise ConflictError(f"run {run.run_id} is busy: another process is creating it")
    try:
        events = [event(now, "forked", target, from_run=run_id, from_step=target, reason=reason,
                        input=data)]
        next_step = schedule(run, workflow, now, events, execute=True)
        engine.store.create(run)
        engine.store.append_history(run.run_id, events)
        result: Result = engine._execute_loop(run, workflow, claim, next_step, warnings)
        return result
    finally:
        claim.release()
