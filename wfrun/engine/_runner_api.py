"""What the engine's helper modules may ask of the runner.

The helpers (`_children`, `_rewind`, `_resume`, `_callbacks`, `_tick`, `_workers`, `_tree`...)
receive the runner as an argument, typed by these protocols, and never import the module
that implements it (`_runner.py`, which imports some of them) nor `core.py`: no helper
imports its caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from wfrun._specs import Workflow
from wfrun.clock import Clock
from wfrun.model import Run
from wfrun.store.abc import ExecutionClaim, Store

from ._deferred_manifests import DeferredManifestCache
from ._links import LinkMaker
from ._result import Mutation, Result


class Reader(Protocol):
    """Reading runs and their links: an `Engine`, or its runner."""

    @property
    def store(self) -> Store:
        """Where runs are kept."""
        ...

    @property
    def links(self) -> LinkMaker:
        """Makes the resume and cancel links of a pause."""
        ...

    def workflow_of(self, run: Run, warnings: list[str]) -> Workflow:
        """The current code of a run's workflow (a warning if it changed since the run
        started)."""
        ...


class RunnerAPI(Reader, Protocol):
    """Loads, claims, changes and executes runs: the runner of `_runner.py`."""

    def workflow_to_continue(self, run: Run, warnings: list[str]) -> Workflow:
        """`workflow_of`, checked as `start` checks a workflow's code (its module imports,
        each code step's function exists and takes ctx): ManifestError before a command
        changes a run whose next step could not execute."""
        ...

    reserved: dict[str, ExecutionClaim]  # claims a tick acquired and has not advanced yet

    def claim(self, run_id: str) -> ExecutionClaim | None:
        """Become the run's executor: a claim in `reserved`, else a new one from the store
        (None if another holder has the run)."""
        ...

    @property
    def clock(self) -> Clock:
        """Where the time comes from."""
        ...

    @property
    def manifests(self) -> DeferredManifestCache:
        """Parsed manifests, handed to the store once a command changed state."""
        ...

    @property
    def workflows_dir(self) -> str:
        """Where workflows are found by name."""
        ...

    @property
    def command(self) -> str:
        """How users invoke wfrun (in the commands that messages suggest)."""
        ...

    @property
    def should_stop(self) -> Callable[[], bool]:
        """True once `tick --watch` was asked to stop (SIGTERM)."""
        ...

    def workflow(self, name_or_path: str, *, check_code: bool = True) -> Workflow:
        """Find and load a workflow by name or manifest path (with its child workflows)."""
        ...

    def start(self, name_or_path: str, input: Any = ..., run_id: str | None = None,
              parent: dict[str, Any] | None = None) -> Result:
        """Create a run and execute it until it completes, fails or pauses."""
        ...

    def cancel(self, run_id: str, reason: str | None = None,
               check: Callable[[Run], None] | None = None) -> Result:
        """Cancel a run that has not finished, with its open child runs; tell its parent."""
        ...

    def transition(self, run_id: str, workflow: Workflow, mutate: Mutation, *, execute: bool,
                   durable: bool = True, current: Run | None = None,
                   claim: ExecutionClaim | None = None) -> tuple[Run, str | None]:
        """Load, mutate, schedule and save the run under its lock; the run and the step this
        process is to execute next (with `execute`); `claim` is given up with the save if
        there is none."""
        ...

    def execute_loop(self, run: Run, workflow: Workflow, claim: ExecutionClaim,
                     step: str | None, warnings: list[str], *,
                     released: bool = False) -> Result:
        """Execute steps one after another while this process holds the claim (`released`:
        it went with the save that left no `step`)."""
        ...

    def continue_if_woken(self, run: Run, workflow: Workflow, warnings: list[str]) -> Result:
        """After letting the claim go, pick up work another process recorded meanwhile."""
        ...

    def handler(self, workflow: Workflow, step: str) -> Callable[..., Any]:
        """The function of a code step (one that raises LookupError if it cannot be found)."""
        ...

    def note(self, warning: str) -> None:
        """Keep a warning about a step this thread executed for the command that executed it
        (`take_notes`), however deep below the command's run the step was."""
        ...

    def take_notes(self) -> list[str]:
        """The warnings `note` kept in this thread since they were last taken."""
        ...

    def drive(self, run_id: str, workflow: Workflow, mutate: Mutation,
              warnings: list[str]) -> Result:
        """Apply a mutation and, if this process can claim the run, execute what follows."""
        ...
