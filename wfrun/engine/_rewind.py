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

    result = engine._drive(run_id, workflow, mutate, warnings)
    if result.run.parent is not None:  # a child run retried on its own: its parent continues
        from ._children import after_change

        for moved in after_change(engine, result.run, result.warnings):
            result.warnings.append(f"parent run {moved['run_id']} continues from step "
                                   f"'{moved['step']}' with this run: it is {moved['status']}")
    return result


def _parent_stays_failed(engine: Engine, run: Run) -> list[str]:
    """A warning when `run` is the child run of a parent that failed for another reason, which
    its retry leaves failed (a parent that failed because of this child continues with it:
    `revive_parent`)."""
    parent = run.parent or {}
    try:
        owner = engine.store.load(parent["run_id"]) if parent else None
    except WfrunError:
        return []  # its parent is gone or unreadable: nothing useful to add
    if owner is None or owner.status != FAILED or failed_through(owner, parent, run.run_id):
        return []
    return [f"run {run.run_id} is the child run of step '{parent['step']}' of run "
            f"{parent['run_id']}, which stays failed: its failure is not this run's; "
            f"'wfrun retry {parent['run_id']}' retries it"]


def failed_through(parent: Run, info: dict[str, Any], child_id: str) -> bool:
    """True if `parent` failed because its node for `child_id` (`info`: the child's `parent`
    entry) failed with that child."""
    if parent.status != FAILED or (parent.error or {}).get("step") != info.get("step"):
        return False
    state = parent.steps.get(info["step"])
    if state is None:
        return False
    index = info.get("index")
    if index is not None:
        if state.iterations is None or not 0 <= index < len(state.iterations):
            return False
        state = state.iterations[index]
    return state.status == FAILED and state.child == child_id


def revive_parent(engine: Engine, parent: Run, info: dict[str, Any], child: Run) -> Run | None:
    """A failed parent whose failure was `child`'s, after a retry of that child that did not
    fail again: retry the parent from the child's node, which keeps that child run (rather
    than starting a new one as `wfrun retry PARENT` does), and let it continue. The parent as
    it is afterwards, or None if it no longer failed through this child."""
    warnings: list[str] = []
    workflow = engine.workflow_of(parent, warnings)
    step, index = info["step"], info.get("index")
    if step not in workflow.steps:
        return None  # the changed workflow has no such step: `wfrun retry PARENT` says so

    def mutate(r: Run, events: Events) -> None:
        if not failed_through(r, info, child.run_id):
            raise _NotRevived
        now = engine.clock.now()
        reset = rewind(r, workflow, step)
        state = r.steps[step]
        target = state if index is None else (state.iterations or [])[index]
        target.child = child.run_id
        r.status, r.error, r.output = RUNNING, None, None
        r.running_since = to_iso(now)
        events.append(event(now, "retried", step, source="child", child=child.run_id,
                            reason=f"child run {child.run_id} was retried", reset=reset))

    try:
        return engine._drive(parent.run_id, workflow, mutate, warnings).run
    except _NotRevived:
        return None


class _NotRevived(Exception):
    """The parent changed meanwhile: it no longer failed through this child."""


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
