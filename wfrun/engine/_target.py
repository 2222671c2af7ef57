"""Which step a resume is for, on a run without foreach iterations or child runs; addresses
into those (`step[2]`, `step/child-step`) are resolved by _resume.py, imported only for them."""

from __future__ import annotations

from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.model import RUNNING, Run

from ._composite import has_composites
from ._transitions import resumable_steps


def is_address(run: Run, step: str | None) -> bool:
    """True if finding the target needs _resume.py: the run iterates or has child runs, or
    `step` is an address."""
    return has_composites(run) or (step is not None and ("/" in step or "[" in step))


def plain_target(run: Run, step: str | None) -> str:
    """`step` if the run has it, else the one step that can take data now; NotFoundError,
    ConflictError (none can) or UsageError (several can) otherwise."""
    candidates = resumable_steps(run)
    if step is not None:
        if step not in run.steps:
            raise NotFoundError(
                f"run {run.run_id} has no step '{step}' (steps: {', '.join(run.steps)})"
            )
        return step
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        if any(s.resumed_at for s in run.steps.values()):  # a resume won the race: say when
            raise ConflictError(finished_run_message(run, None))
        # A step executing now takes data only when named (SPEC §3): the data is kept until
        # it pauses, and discarded if it ends without pausing.
        executing = [sid for sid, s in run.steps.items() if s.status == RUNNING and s.exec_nonce]
        hint = (f"; step '{executing[0]}' is executing: to hand it data when it pauses, name "
                f"it with --step {executing[0]}") if len(executing) == 1 else ""
        raise ConflictError(
            f"run {run.run_id} is {run.status} and has no step waiting for data{hint}"
        )
    raise UsageError(
        f"run {run.run_id} has several steps that can take data ({', '.join(candidates)}); "
        "choose one with --step"
    )


def finished_run_message(run: Run, step: str | None) -> str:
    """Why a finished run cannot be resumed, naming when its step was resumed if it was."""
    resumed = [(s.resumed_at, sid) for sid, s in run.steps.items()
               if s.resumed_at and (step is None or sid == step)]
    if resumed:
        at, sid = max(resumed)
        return (f"step '{sid}' of run {run.run_id} was already resumed at {at}; the run is "
                f"{run.status} and its data is kept")
    return f"run {run.run_id} is {run.status}; it cannot be resumed"
