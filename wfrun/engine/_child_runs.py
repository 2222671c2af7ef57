"""Which run is a node's child run: the workflow a `workflow:` step names (checked, with
every child workflow below it, before a run starts), the child's derived id, and the child a
node started and has not recorded yet (adopted after a crash; found while its first execution
runs, for early resumes by path)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

from wfrun import loader
from wfrun._specs import Workflow
from wfrun.errors import ManifestError, NotFoundError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.model import Run
from wfrun.store.abc import Store

from ._runner_api import RunnerAPI


def resolve_child(runner: RunnerAPI, parent: Workflow, name: str) -> Workflow:
    """The workflow a `workflow:` step names: in the workflows directory, else beside the
    parent's manifest. NotFoundError if neither has it."""
    places = list(dict.fromkeys([runner.workflows_dir, os.path.dirname(parent.path)]))
    for place in places:
        try:
            path = loader.find_manifest(name, place)
        except NotFoundError:
            continue
        return loader.load_workflow(path, cache=runner.manifests)
    raise NotFoundError(
        f"{parent.path}: no workflow {name!r} for a child run (looked in "
        f"{' and '.join(places)}); create it or fix the step's 'workflow:'"
    )


def check_children(runner: RunnerAPI, workflow: Workflow, _stack: tuple[str, ...] = ()) -> None:
    """Check that every child workflow exists and is valid and that none nests itself."""
    stack = (*_stack, workflow.path)
    for spec in workflow.steps.values():
        if spec.workflow is None:
            continue
        try:
            child = resolve_child(runner, workflow, spec.workflow)
        except NotFoundError as exc:
            raise ManifestError(
                f"{workflow.path}: step '{spec.id}': key 'workflow': {exc.message}"
            ) from None
        except ManifestError as exc:
            raise ManifestError(
                f"{workflow.path}: step '{spec.id}': key 'workflow': the child workflow "
                f"{spec.workflow!r} is invalid: {exc.message}"
            ) from None
        if child.path in stack:
            names = [os.path.basename(p) for p in (*stack[stack.index(child.path):], child.path)]
            raise ManifestError(
                f"{workflow.path}: step '{spec.id}': key 'workflow': workflows nest each "
                f"other in a cycle ({' -> '.join(names)}); a workflow cannot run itself"
            )
        check_children(runner, child, stack)


def child_run_id(parent_id: str, step_id: str, index: int | None, attempt: int = 1) -> str:
    """The id of the child run a node starts: `PARENT--STEP[-INDEX][-rATTEMPT]` (hashed when
    too long).

    Derived, not random, so a node that executes again after a crash finds the child it had
    already started instead of starting a second one."""
    wanted = f"{parent_id}--{step_id}" + (f"-{index}" if index is not None else "") \
        + (f"-r{attempt}" if attempt > 1 else "")
    if RUN_ID_PATTERN.fullmatch(wanted):
        return wanted
    digest = hashlib.sha256(wanted.encode()).hexdigest()[:24]
    return f"{parent_id[:30]}--{digest}"


def fresh_child_id(store: Store, parent_id: str, step_id: str, index: int | None) -> str:
    """The id for a node that records no child: the first derived id not taken by a child its
    parent already recorded as finished (an earlier attempt, re-executed by a retry). A child
    started but never recorded (the parent crashed meanwhile) is adopted."""
    for child_id, child in _derived_children(store, parent_id, step_id, index):
        if child is None or not _recorded_as_finished(child, parent_id):
            return child_id
    return child_run_id(parent_id, step_id, index, 1000)


def unrecorded_child(store: Store, parent_id: str, step_id: str, index: int | None) -> str | None:
    """The child run a running node has started and its parent not yet recorded (the parent
    records it when the child's first execution pauses or ends), or None if it started none."""
    for child_id, child in _derived_children(store, parent_id, step_id, index):
        if child is None:
            return None
        owner = child.parent or {}
        if (owner.get("run_id"), owner.get("step"), owner.get("index")) \
                != (parent_id, step_id, index):
            return None  # a run of that name that is not this node's child
        if not _recorded_as_finished(child, parent_id):
            return child_id
    return None


def _derived_children(store: Store, parent_id: str, step_id: str,
                      index: int | None) -> Iterator[tuple[str, Run | None]]:
    """The node's derived child ids in attempt order, each with its run, up to the first id
    no run has (given with None)."""
    for attempt in range(1, 1000):
        child_id = child_run_id(parent_id, step_id, index, attempt)
        try:
            child = store.load(child_id)
        except NotFoundError:
            yield child_id, None
            return
        yield child_id, child


def _recorded_as_finished(child: Run, parent_id: str) -> bool:
    """True if `child` finished and its parent `parent_id` recorded that (an earlier attempt)."""
    owner = child.parent or {}
    return child.finished and owner.get("notified") == child.status \
        and owner.get("run_id") == parent_id
