"""`retry` (re-execute a failed run from a step, in place) and `fork` (a new run from a step)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from wfrun import _schema
from wfrun._specs import Workflow
from wfrun.durations import to_iso
from wfrun.errors import ConflictError, NotFoundError, WfrunError
from wfrun.ids import check_run_id, new_run_id
from wfrun.model import FAILED, RUNNING, SETTLED, Run, StepState

from ._children import after_change, failed_through
from ._history import Events, event
from ._result import Result
from ._runner_api import RunnerAPI
from ._schedule import schedule, step_gone
from ._transitions import rewind


def _step_of(run: Run, workflow: Workflow, step: str) -> str:
    """`step` if the current workflow has it; NotFoundError or CodeChangedError otherwise."""
    if step in workflow.steps:
        return step
    if step in run.steps:
        raise step_gone(run, step, workflow, "restore it, or choose another step")
    raise NotFoundError(
        f"run {run.run_id} has no step '{step}' (steps: {', '.join(workflow.steps)})"
    )


def retry(runner: RunnerAPI, run_id: str, step: str | None, reason: str | None) -> Result:
    """Re-execute a failed run from its failed step (or `step`) in the same run."""
    check_run_id(run_id)
    run = runner.store.load(run_id)
    if run.status != FAILED:
        raise ConflictError(
            f"run {run_id} is {run.status}, not failed; only a failed run can be retried "
            f"(to execute it again from a step as a new run, use 'wfrun fork {run_id} --from STEP')"
        )
    warnings: list[str] = []
    workflow = runner.workflow_to_continue(run, warnings)
    if step is None:
        step = (run.error or {}).get("step")
        if not step:
            raise ConflictError(
                f"run {run_id} failed without naming a step; choose one with --step"
            )
    target = _step_of(run, workflow, step)
    warnings.extend(_parent_stays_failed(runner, run))

    def mutate(r: Run, events: Events) -> None:
        if r.status != FAILED:  # another retry won the race
            raise ConflictError(
                f"run {run_id} is {r.status} (since {r.updated_at}); it was retried meanwhile"
            )
        now = runner.clock.now()
        before = dict(r.steps)
        reset = rewind(r, workflow, target)
        for sid in reset:
            _keep_ask_exports(before[sid], r.steps[sid])
        r.status, r.error, r.output = RUNNING, None, None
        r.running_since = to_iso(now)
        events.append(event(now, "retried", target, source="cli", reason=reason, reset=reset))

    result = runner.drive(run_id, workflow, mutate, warnings)
    if result.run.parent is not None:  # a child run retried on its own: its parent continues
        for moved in after_change(runner, result.run, result.warnings):
            result.warnings.append(f"parent run {moved['run_id']} continues from step "
                                   f"'{moved['step']}' with this run: it is {moved['status']}")
    return result


def _keep_ask_exports(old: StepState, new: StepState) -> None:
    """A node made pending that kept the answers of its asks (`rewind`: it had not completed)
    keeps what they set, as between the automatic retries of `retry:`: `resume_data` (the
    latest answer), `suspend_data` (the latest ask's data) and when it was answered; and so do
    its foreach iterations that kept theirs."""
    if new.answers:
        new.resume_data, new.suspend_data = old.resume_data, old.suspend_data
        new.resumed_at = old.resumed_at
    for old_it, new_it in zip(old.iterations or [], new.iterations or [], strict=False):
        if new_it is not old_it:  # a completed iteration is kept as it was
            _keep_ask_exports(old_it, new_it)


def _parent_stays_failed(runner: RunnerAPI, run: Run) -> list[str]:
    """A warning when `run` is the child run of a parent that failed for another reason, which
    its retry leaves failed (a parent that failed because of this child continues with it:
    `revive_parent`)."""
    parent = run.parent or {}
    try:
        owner = runner.store.load(parent["run_id"]) if parent else None
    except WfrunError:
        return []  # its parent is gone or unreadable: nothing useful to add
    if owner is None or owner.status != FAILED or failed_through(owner, parent, run.run_id):
        return []
    return [f"run {run.run_id} is the child run of step '{parent['step']}' of run "
            f"{parent['run_id']}, which stays failed: its failure is not this run's; "
            f"'wfrun retry {parent['run_id']}' retries it"]


def forked_steps(source: Run, workflow: Workflow, step: str) -> dict[str, StepState]:
    """The new run's steps: copies of the settled steps not downstream of `step`, the rest new.

    A copy keeps the step's result (output, exports, iterations), not its child runs: those
    are the source's (their `parent` names it, and `prune` deletes them with it), so the copy
    and its iterations name none (`child` is None)."""
    rewound = {step} | workflow.downstream(step)
    steps: dict[str, StepState] = {}
    for sid in workflow.steps:
        old = source.steps.get(sid)
        if sid in rewound or old is None or old.status not in SETTLED:
            steps[sid] = StepState()
        else:
            copy = StepState.from_dict(json.loads(json.dumps(old.to_dict())))
            for node in (copy, *(copy.iterations or [])):
                node.child = None
            steps[sid] = copy
    return steps


def fork(
    runner: RunnerAPI, run_id: str, step: str, *, input: Any, replace_input: bool,
    new_id: str | None, reason: str | None,
) -> Result:
    """Create a run that keeps what happened before `step` in `run_id`, and execute it from there."""

    check_run_id(run_id)
    if new_id is not None:
        check_run_id(new_id)
    source = runner.store.load(run_id)
    warnings: list[str] = []
    workflow = runner.workflow_to_continue(source, warnings)
    target = _step_of(source, workflow, step)
    data = ({} if input is None else input) if replace_input else source.input
    what = "--input" if replace_input else f"input of run {run_id} (replace it with --input)"
    _schema.validate(workflow.input_schema, data, f"{what} for workflow '{workflow.name}'")
    if new_id is not None and runner.store.exists(new_id):
        raise ConflictError(f"run {new_id} already exists; choose another --run-id")
    now: datetime = runner.clock.now()
    run = Run(
        run_id=new_id or new_run_id(now), workflow=workflow.name, input=data,
        created_at=to_iso(now), updated_at=to_iso(now), manifest_path=workflow.path,
        code_hash=dict(workflow.code_hash), steps=forked_steps(source, workflow, target),
        running_since=to_iso(now),
    )
    claim = runner.claim(run.run_id)
    if claim is None:
        raise ConflictError(f"run {run.run_id} is busy: another process is creating it")
    try:
        events = [event(now, "forked", target, from_run=run_id, from_step=target, reason=reason,
                        input=data)]
        next_step = schedule(run, workflow, now, events, execute=True)
        runner.store.create(run, events)
        result: Result = runner.execute_loop(run, workflow, claim, next_step, warnings)
        return result
    finally:
        claim.release()
