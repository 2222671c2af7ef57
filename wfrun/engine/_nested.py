"""Where a resume by address or label goes in a run with foreach iterations or child runs:
`step[2]` (an iteration), `step/child-step` (inside a child run), `--label NAME`, or the one
suspension anywhere below the run. `_resume.py` imports it only for such runs and addresses."""

from __future__ import annotations

from wfrun._cite import cited
from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.model import RUNNING, Run

from ._address import Segment, join, parse
from ._child_runs import unrecorded_child
from ._composite import has_composites, node
from ._runner_api import Reader
from ._tree import candidates, labelled, latest_resumed, resumed_labelled


class InChild:
    """The suspension is inside a child run: resume `address` there (None: its only one)."""

    __slots__ = ("address", "run_id", "via")

    def __init__(self, run_id: str, address: str | None, via: str) -> None:
        self.run_id = run_id
        self.address = address
        self.via = via  # the address of the node that owns the child run (for messages)


def locate(runs: Reader, run: Run, step: str | None) -> str | Segment | InChild | None:
    """What a resume of `run` naming `step` (None: whatever can take data) is for: a plain
    step (a name, or None, looked up as a plain resume's), a foreach iteration (a `Segment`
    with an index), or a suspension inside a child run. NotFoundError, ConflictError or UsageError
    when nothing, or more than one thing, matches."""
    if not has_composites(run):  # then `step` is an address (`_resume.is_address`)
        if step is not None and ("/" in step or "[" in step):
            segments = parse(step)
            first = segments[0]
            if first.step in run.steps:
                if first.index is None and len(segments) > 1 \
                        and _unrecorded(runs, run, first) is not None:
                    return _below(runs, run, segments)  # a child's first execution, under way
                raise NotFoundError(f"step '{first.step}' of run {run.run_id} has no "
                                    "iterations or child run to address")
        return step  # not a step of the run: the plain lookup says so
    if step is None:
        found = candidates(runs, run)
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
    return _below(runs, run, segments)


def _below(runs: Reader, run: Run, segments: list[Segment]) -> Segment | InChild:
    """The iteration, or the child run's suspension, that `segments` address."""
    first, rest = segments[0], segments[1:]
    state = run.steps[first.step]
    if first.index is None and state.iterations is not None:
        prefix = f"{first.step}["
        under = [c for c in candidates(runs, run) if c.startswith(prefix)]
        if len(under) != 1:
            raise _choose(runs, run, first.step, under)
        return _below(runs, run, parse(under[0]))
    if first.index is not None and state.iterations is None:
        raise NotFoundError(f"step '{first.step}' of run {run.run_id} is not a foreach step "
                            "(or has not started its iterations); address it without [INDEX]")
    try:
        it = node(run, first.step, first.index)
    except IndexError as exc:
        raise NotFoundError(f"run {run.run_id}: {exc}") from None
    child = it.child or (_unrecorded(runs, run, first) if rest else None)
    if child:
        if not rest:
            prefix = f"{first}/"
            under = [c for c in candidates(runs, run) if c.startswith(prefix)]
            if len(under) != 1:
                raise _choose(runs, run, str(first), under)
            rest = parse(under[0])[1:]
        return InChild(child, join(*map(str, rest)) or None, str(first))
    if rest or first.index is None:
        raise NotFoundError(f"step '{first}' of run {run.run_id} has no child run to address "
                            f"with '/'")
    return first


def _unrecorded(runs: Reader, run: Run, segment: Segment) -> str | None:
    """The child run that the running node at `segment` has started and not yet recorded:
    its first execution is under way, and its steps' links are already out (SPEC §3, early
    callbacks)."""
    try:
        state = node(run, segment.step, segment.index)
    except (KeyError, IndexError):
        return None
    if state.status != RUNNING:
        return None
    return unrecorded_child(runs.store, run.run_id, segment.step, segment.index)


def _choose(runs: Reader, run: Run, where: str, under: list[str]) -> Exception:
    if not under:
        resumed = latest_resumed(runs, run, where)
        if resumed is not None:  # a second resume (SPEC §6: say when the first was)
            return ConflictError(f"step '{resumed[1]}' of run {run.run_id} was already resumed "
                                 f"at {resumed[0]}; nothing under step '{where}' is waiting for "
                                 "data")
        return ConflictError(f"nothing under step '{where}' of run {run.run_id} is waiting "
                             "for data")
    return UsageError(f"run {run.run_id} has several steps under '{where}' that can take data "
                      f"({', '.join(under)}); choose one with --step")


def label_target(runs: Reader, run: Run, label: str, command: str) -> str | None:
    """The address of the one open suspension of `run` (its iterations and child runs
    included) named `label`; None for a finished run (resuming it says why it cannot be).

    Raises NotFoundError naming the labels that are open if none has it, and UsageError
    naming the suspensions if several have it."""
    if run.finished:
        return None
    found = labelled(runs, run)
    matches = [address for address, name in found if name == label]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"label {label!r} names several open suspensions of run {run.run_id} "
                         f"({', '.join(matches)}); choose one with --step")
    resumed = resumed_labelled(runs, run, label)
    if resumed is not None:  # a second resume of that suspension (SPEC §6: exit 3, saying when)
        raise ConflictError(f"step '{resumed[0]}' (label {label!r}) of run {run.run_id} was "
                            f"already resumed at {resumed[1]}; its data is kept")
    names = sorted({name for _, name in found})
    known = f"its labels: {', '.join(names)}" if names else "none of its suspensions has a label"
    raise NotFoundError(f"run {run.run_id} has no open suspension labelled {label!r} ({known}); "
                        f"{cited(f'{command} show {run.run_id}')} lists what it waits for")
