"""What engine commands return (`Result`, `TickReport`), and a state change (`Mutation`) as
the runner applies it to a run under the run's lock."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from wfrun._specs import Workflow
from wfrun.model import Run

from ._history import Events

Mutation = Callable[[Run, Events], None]
NO_INPUT: Any = object()  # `start` without an input: the run's input is {}


class Result:
    """A run after a command, with the warnings to show beside it."""

    __slots__ = ("accepted", "run", "warnings", "workflow")

    def __init__(self, run: Run, workflow: Workflow | None, warnings: list[str] | None = None,
                 accepted: bool = False) -> None:
        self.run = run
        self.workflow = workflow
        self.warnings: list[str] = [] if warnings is None else warnings
        # a resume kept in the run's inbox: its step was still executing (SPEC §3)
        self.accepted = accepted


class TickReport:
    """What one `tick` did: `{"advanced": [...], "errors": [...]}`, and warnings to show."""

    __slots__ = ("advanced", "errors", "warnings")

    def __init__(self, advanced: list[dict[str, Any]] | None = None,
                 errors: list[dict[str, str]] | None = None,
                 warnings: list[str] | None = None) -> None:
        self.advanced: list[dict[str, Any]] = [] if advanced is None else advanced
        self.errors: list[dict[str, str]] = [] if errors is None else errors
        self.warnings: list[str] = [] if warnings is None else warnings
