"""Composite steps at run time: executing foreach iterations and child runs, and keeping a
parent run in step with its children (their status flows up, cancellation flows down).

A child run is an ordinary run with `parent = {"run_id", "step", "index", "notified"}`. The
parent records the child's status on the node that owns it; `notified` is the status the
parent last recorded, and a child whose status differs is due at once (`Run.next_due`), so a
crash between the two writes is repaired by the next tick. Locks: a run's state lock is never
held while another run's is taken; the parent is told only after the child's lock and claim
are released.
"""

from __future__ import annotations

import functools
from typing import Any

from wfrun._specs import StepSpec, Workflow
from wfrun.durations import to_iso
from wfrun.errors import NotFoundError, WfrunError
from wfrun.model import CANCELLED, FAILED, FINISHED, RUNNING, SKIPPED, Run

from ._actions import route_problem
from ._child_runs import child_run_id, fresh_child_id, resolve_child
from ._composite import (
    ChildResult,
    apply_child_result,
    apply_iteration_outcome,
    begin_next,
    items_of,
    label,
    node,
    settle,
)
from ._document import output_lost_warning
from ._execute import execute
from ._history import Events, event
from ._runner_api import RunnerAPI
from ._schedule import step_gone
from ._transitions import rewind

MAX_DEPTH = 32  # how far status may travel up a chain of parents in one command


# -- executing a composite step ------------------------------------------------------------------


def execute_composite(runner: RunnerAPI, run: Run, workflow: Workflow,
                      step_id: str) -> tuple[Run, str | None]:
    """Execute a running `workflow:` or `foreach:` step as far as it goes in this process.

    Returns the run and the next step to execute, like one turn of the execution loop."""
    spec = workflow.steps[step_id]
    run_id = run.run_id
    if spec.foreach is None:
        result = run_child(runner, run, workflow, spec, None, child_input(run, spec))

        def record(r: Run, events: Events) -> None:
            apply_child_result(r, step_id, None, result, runner.clock.now(), events,
                               executing=True)

        run, step = runner.transition(run_id, workflow, record, execute=True)
        ack(runner, result)
        close_children(runner, run)  # cancelled while the child ran: the child goes too
        return run, step
    chosen: list[int | None] = [None]

    def first(r: Run, events: Events) -> None:
        chosen[0] = begin_next(r, workflow, step_id, runner.clock.now(), events)

    run, step = runner.transition(run_id, workflow, first, execute=True)
    while chosen[0] is not None and step == step_id and run.status == RUNNING:
        index = chosen[0]
        items = items_of(run, spec)
        item = items[index] if index < len(items) else None
        if spec.kind == "workflow":
            result = run_child(runner, run, workflow, spec, index, item)

            def record_child(r: Run, events: Events, i: int = index,
                             res: ChildResult = result) -> None:
                now = runner.clock.now()
                apply_child_result(r, step_id, i, res, now, events, executing=True)
                chosen[0] = begin_next(r, workflow, step_id, now, events)

            run, step = runner.transition(run_id, workflow, record_child, execute=True)
            ack(runner, result)
            close_children(runner, run)
            continue
        name = label(step_id, index)
        outcome = execute(
            runner.handler(workflow, step_id), run, step_id,
            lambda nonce, n=name: runner.links.links(run_id, n, nonce, workflow,  # type: ignore[misc]
                                                     schema_step=step_id),
            runner.clock.now, lambda records: runner.store.append_log(run_id, records),
            index=index, item=item, event_url=lambda n: runner.links.event_url(run_id, n),
            route_problem=functools.partial(route_problem, workflow.steps[step_id]),
        )
        if outcome.output_lost:
            runner.note(output_lost_warning(run_id, name, outcome.output_lost,
                                            runner.command))

        def record_code(r: Run, events: Events, i: int = index, o: Any = outcome) -> None:
            now = runner.clock.now()
            apply_iteration_outcome(r, workflow, step_id, i, o, now, events)
            chosen[0] = begin_next(r, workflow, step_id, now, events)

        run, step = runner.transition(run_id, workflow, record_code, execute=True)
    return run, step


def child_input(run: Run, spec: StepSpec) -> Any:
    """A child's input: the `input_from:` step's output, else the parent run's input."""
    return run.steps[spec.input_from].output if spec.input_from else run.input


def run_child(runner: RunnerAPI, run: Run, workflow: Workflow, spec: StepSpec, index: int | None,
              data: Any) -> ChildResult:
    """Start the node's child run (or find the one it started before) and run it until it
    pauses or finishes; never raises for a child that cannot start (the node fails)."""
    it = node(run, spec.id, index)
    child_id = it.child or child_run_id(run.run_id, spec.id, index)
    assert spec.workflow is not None
    try:
        child_id = it.child or fresh_child_id(runner.store, run.run_id, spec.id, index)
        child_workflow = resolve_child(runner, workflow, spec.workflow)
        parent = {"run_id": run.run_id, "step": spec.id, "index": index, "notified": None}
        child = runner.start(child_workflow.path, data, child_id, parent=parent).run
    except WfrunError as exc:
        return ChildResult(child_id, problem=exc.message)
    owner = child.parent or {}
    if (owner.get("run_id"), owner.get("step"), owner.get("index")) != (run.run_id, spec.id, index):
        return ChildResult(child_id, problem=(
            f"run {child_id} already exists and is not the child of step "
            f"'{label(spec.id, index)}' of run {run.run_id}"))
    close_children(runner, child)
    return ChildResult(child_id, child.status, child.output, child.error)


def ack(runner: RunnerAPI, result: ChildResult) -> None:
    """Note on the child that its parent has recorded `result.status` (it stops being due)."""
    if result.status is None or result.status == RUNNING:
        return
    try:
        with runner.store.lock(result.child_id):
            child = runner.store.load(result.child_id)
            if child.parent is None or child.parent.get("notified") == result.status:
                return
            child.parent = {**child.parent, "notified": result.status}
            runner.store.save(child)
    except NotFoundError:
        return


# -- keeping parents and children in step ---------------------------------------------------------


class _NoChange(Exception):
    """The parent already agrees with its child: nothing to write."""


def after_change(runner: RunnerAPI, run: Run, problems: list[str]) -> list[dict[str, Any]]:
    """After a command changed `run`: cancel the open children of a run that ended, and tell
    its parents (and theirs) what became of it. Returns `{"run_id", "step", "status"}` for
    each parent that advanced. A parent that cannot be told now (its workflow is gone, it is
    busy) is noted in `problems`: the child stays due, so the next tick tries again."""
    advanced: list[dict[str, Any]] = []
    current: Run | None = run
    for _ in range(MAX_DEPTH):
        if current is None:
            break
        close_children(runner, current)
        info = current.parent
        if info is None or current.status == RUNNING or info.get("notified") == current.status:
            break
        try:
            parent = _tell_parent(runner, current)
        except WfrunError as exc:
            problems.append(f"the parent run {info['run_id']} of run {current.run_id} was not "
                            f"updated: {exc.message}; the next 'wfrun tick' tries again")
            break
        if parent is not None:
            advanced.append({"run_id": parent.run_id, "step": label(info["step"], info["index"]),
                             "status": parent.status})
        current = parent
    return advanced


def _tell_parent(runner: RunnerAPI, child: Run) -> Run | None:
    """Record the child's status on its parent (continuing the parent); the parent if it
    changed."""
    info = child.parent or {}
    result = ChildResult(child.run_id, child.status, child.output, child.error)
    try:
        parent = runner.store.load(info["run_id"])
    except NotFoundError:
        ack(runner, result)  # the parent was deleted by hand: nobody to tell
        return None
    if parent.status == FAILED and child.status != FAILED \
            and failed_through(parent, info, child.run_id):  # a child retried on its own
        revived = revive_parent(runner, parent, info, child)
        if revived is not None:
            return revived
    if parent.finished:
        ack(runner, result)
        if not child.finished:
            runner.cancel(child.run_id, f"parent run {parent.run_id} is {parent.status}")
        return None
    warnings: list[str] = []
    # as a resume of the parent would be: refused (the parent left as it is, told by a later
    # tick) if its code is broken or the step holding the child is gone from it
    workflow = runner.workflow_to_continue(parent, warnings)
    if info["step"] not in workflow.steps:
        raise step_gone(parent, info["step"], workflow,
                        f"restore it so that the run continues with its child run {child.run_id}")
    agreed: list[bool | None] = [None]

    def mutate(r: Run, events: Events) -> None:
        now = runner.clock.now()
        before = _node_view(r, info["step"], info["index"])
        agreed[0] = apply_child_result(r, info["step"], info["index"], result, now, events,
                                       executing=False)
        if agreed[0] and info["index"] is not None and info["step"] in workflow.steps:
            settle(r, workflow, info["step"], now, events, executing=False)
        if _node_view(r, info["step"], info["index"]) == before:
            raise _NoChange

    try:
        parent = runner.drive(parent.run_id, workflow, mutate, warnings).run
    except _NoChange:
        if agreed[0]:
            ack(runner, result)
        return None
    if agreed[0]:
        ack(runner, result)
    return parent


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


def revive_parent(runner: RunnerAPI, parent: Run, info: dict[str, Any], child: Run) -> Run | None:
    """A failed parent whose failure was `child`'s, after a retry of that child that did not
    fail again: retry the parent from the child's node, which keeps that child run (rather
    than starting a new one as `wfrun retry PARENT` does), and let it continue. The parent as
    it is afterwards, or None if it no longer failed through this child."""
    warnings: list[str] = []
    workflow = runner.workflow_of(parent, warnings)
    step, index = info["step"], info.get("index")
    if step not in workflow.steps:
        return None  # the changed workflow has no such step: `wfrun retry PARENT` says so

    def mutate(r: Run, events: Events) -> None:
        if not failed_through(r, info, child.run_id):
            raise _NotRevived
        now = runner.clock.now()
        reset = rewind(r, workflow, step)
        state = r.steps[step]
        target = state if index is None else (state.iterations or [])[index]
        target.child = child.run_id
        r.status, r.error, r.output = RUNNING, None, None
        r.running_since = to_iso(now)
        events.append(event(now, "retried", step, source="child", child=child.run_id,
                            reason=f"child run {child.run_id} was retried", reset=reset))

    try:
        return runner.drive(parent.run_id, workflow, mutate, warnings).run
    except _NotRevived:
        return None


class _NotRevived(Exception):
    """The parent changed meanwhile: it no longer failed through this child."""


def _node_view(run: Run, step_id: str, index: int | None) -> Any:
    try:
        it = node(run, step_id, index)
    except (KeyError, IndexError):
        return None
    return (run.status, run.steps[step_id].status, it.status, it.child, it.pause)


def close_children(runner: RunnerAPI, run: Run) -> None:
    """Cancel the open child runs of a run that ended (cancelled, failed, or exited)."""
    if run.status not in FINISHED:
        return
    for sid, state in run.steps.items():
        for it in [state, *(state.iterations or ())]:
            if not it.child or it.status not in (CANCELLED, SKIPPED):
                continue
            try:
                child = runner.store.load(it.child)
            except WfrunError:
                continue
            if not child.finished:
                try:
                    runner.cancel(child.run_id, f"parent run {run.run_id} is {run.status} "
                                                f"(step '{sid}')")
                except WfrunError:
                    continue


def after_tick(runner: RunnerAPI, run_id: str, report: Any, run: Run | None = None) -> None:
    """After tick advanced a run (`run`, if known), its parents continue; reported with the
    run's reason. The warnings noted while the run and its parents executed go to the
    report."""
    if run is None:
        try:
            run = runner.store.load(run_id)
        except NotFoundError:
            return
    problems: list[str] = []
    for item in after_change(runner, run, problems):
        reasons = [a["reason"] for a in report.advanced if a["run_id"] == run_id]
        report.advanced.append({**item, "reason": reasons[-1] if reasons else "recovered"})
    report.errors.extend({"run_id": run_id, "message": p} for p in problems)
    report.warnings.extend(runner.take_notes())
