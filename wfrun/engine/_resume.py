"""Resuming by address: `step[2]` (a foreach iteration) and `step/child-step` (inside a child
run); the data goes to the run that owns the suspension, and its parents then continue."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from wfrun import _schema, loader
from wfrun.errors import CodeChangedError, ConflictError, NotFoundError, UsageError, WfrunError
from wfrun.model import Run

from ._actions import check_resume_action
from ._address import Segment, join, parse
from ._ask import ask_nonce
from ._children import after_change
from ._composite import has_composites, node
from ._iteration_pauses import apply_iteration_resume
from ._schedule import Events
from ._target import plain_target
from ._tree import candidates, labelled

if TYPE_CHECKING:
    from .core import Engine, Result


def resume_target(engine: Engine, run: Run, step: str | None) -> str | list[Segment]:
    """The plain step to resume, or the address of a suspension in an iteration or child."""
    if not has_composites(run):
        if step is not None and ("/" in step or "[" in step):
            first = parse(step)[0]
            if first.step in run.steps:
                raise NotFoundError(f"step '{first.step}' of run {run.run_id} has no "
                                    "iterations or child run to address")
        return plain_target(run, step)
    if step is None:
        found = candidates(engine, run)
        if len(found) == 1:
            step = found[0]
        elif not found:
            raise ConflictError(f"run {run.run_id} is {run.status} and has no step waiting "
                                "for data")
        else:
            raise UsageError(f"run {run.run_id} has several steps that can take data "
                             f"({', '.join(found)}); choose one with --step")
    segments = parse(step)
    first = segments[0]
    if first.step not in run.steps:
        raise NotFoundError(
            f"run {run.run_id} has no step '{first.step}' (steps: {', '.join(run.steps)})"
        )
    state = run.steps[first.step]
    if len(segments) == 1 and first.index is None and not state.child \
            and state.iterations is None:
        return first.step
    return segments


def label_target(engine: Engine, run: Run, label: str) -> str | None:
    """The address of the one open suspension of `run` (its iterations and child runs
    included) named `label`; None for a finished run (resuming it says why it cannot be).

    Raises NotFoundError naming the labels that are open if none has it, and UsageError
    naming the suspensions if several have it."""
    if run.finished:
        return None
    found = labelled(engine, run)
    matches = [address for address, name in found if name == label]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"label {label!r} names several open suspensions of run {run.run_id} "
                         f"({', '.join(matches)}); choose one with --step")
    names = sorted({name for _, name in found})
    known = f"its labels: {', '.join(names)}" if names else "none of its suspensions has a label"
    raise NotFoundError(f"run {run.run_id} has no open suspension labelled {label!r} ({known}); "
                        f"'{engine.command} show {run.run_id}' lists what it waits for")


def resume_nested(engine: Engine, run: Run, segments: list[Segment], data: Any,
                  action: str | None, request: dict[str, Any] | None) -> Result:
    """Resume the suspension at `segments` and return the addressed (top) run afterwards."""
    from .core import Result

    first, rest = segments[0], segments[1:]
    state = run.steps[first.step]
    if first.index is None and state.iterations is not None:
        prefix = f"{first.step}["
        under = [c for c in candidates(engine, run) if c.startswith(prefix)]
        if len(under) != 1:
            raise _choose(run, first.step, under)
        return resume_nested(engine, run, parse(under[0]), data, action, request)
    if first.index is not None and state.iterations is None:
        raise NotFoundError(f"step '{first.step}' of run {run.run_id} is not a foreach step "
                            "(or has not started its iterations); address it without [INDEX]")
    try:
        it = node(run, first.step, first.index)
    except IndexError as exc:
        raise NotFoundError(f"run {run.run_id}: {exc}") from None
    warnings: list[str] = []
    if it.child:
        if not rest:
            prefix = f"{first}/"
            under = [c for c in candidates(engine, run) if c.startswith(prefix)]
            if len(under) != 1:
                raise _choose(run, str(first), under)
            rest = parse(under[0])[1:]
        child = engine.resume(it.child, data, join(*map(str, rest)) or None, action, request)
        top = engine.store.load(run.run_id)
        return Result(top, engine.workflow_of(top, warnings), [*child.warnings, *warnings])
    if rest or first.index is None:
        raise NotFoundError(f"step '{first}' of run {run.run_id} has no child run to address "
                            f"with '/'")
    workflow = engine.workflow_of(run, warnings)
    spec = workflow.steps.get(first.step)
    if spec is None:
        raise CodeChangedError(
            f"step '{first.step}' of run {run.run_id} no longer exists in workflow "
            f"'{run.workflow}' ({workflow.path}); restore it to resume this run"
        )
    if spec.resume_schema is not None:
        loader.check_schemas(workflow)
        _schema.validate(spec.resume_schema, data, f"resume data for step '{first}'")
    check_resume_action(workflow, str(first), action, run.run_id, it)
    callback = request or {"body": data, "headers": {}, "query": {}, "method": None,
                           "source": "cli"}
    index = first.index
    asked = ask_nonce(it)

    def mutate(r: Run, events: Events) -> None:
        if r.finished:
            raise ConflictError(f"run {r.run_id} is {r.status}; it cannot be resumed")
        apply_iteration_resume(r, workflow, first.step, index, data, action, callback,
                               engine.clock.now(), events, asked)

    result = engine._drive(run.run_id, workflow, mutate, warnings)
    after_change(engine, result.run, result.warnings)
    return result


def _choose(run: Run, where: str, under: list[str]) -> Exception:
    if not under:
        return ConflictError(f"nothing under step '{where}' of run {run.run_id} is waiting "
                             "for data")
    return UsageError(f"run {run.run_id} has several steps under '{where}' that can take data "
                      f"({', '.join(under)}); choose one with --step")


def finished_message(engine: Engine, run: Run, step: str | None) -> str | None:
    """For a finished run resumed by address: when that iteration or child step was resumed."""
    if step is None or ("/" not in step and "[" not in step):
        return None
    current, segments = run, parse(step)
    for depth, segment in enumerate(segments):
        try:
            it = node(current, segment.step, segment.index)
        except (KeyError, IndexError):
            return None
        last = depth == len(segments) - 1
        if last and it.resumed_at:
            return (f"step '{step}' of run {run.run_id} was already resumed at "
                    f"{it.resumed_at}; the run is {run.status} and its data is kept")
        if last or not it.child:
            return None
        try:
            current = engine.store.load(it.child)
        except WfrunError:
            return None
    return None
