"""What a step function receives as `ctx`: identity, its input, earlier steps' exports, the
run counter and context, its log, and the flow API (`ctx.flow`, in wfrun.flow).

This module imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from wfrun._detach import detached
from wfrun._frozen import Frozen
from wfrun.flow import Flow


class _Exports(Frozen):
    """Read-only for step code, and readable as keys too (`ctx.run["runs"]`)."""

    __slots__ = ()

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)


class RunInfo(_Exports):
    """`ctx.run`: `runs` (1 at first), `context` of the last rerun, `callback_request`."""

    __slots__ = ("callback_request", "context", "runs")
    runs: int
    context: Any
    callback_request: dict[str, Any] | None

    def __init__(self, runs: int, context: Any = None,
                 callback_request: dict[str, Any] | None = None) -> None:
        self._set(runs=runs, context=context, callback_request=callback_request)


class StepExports(_Exports):
    """`ctx.steps["id"]`: what an earlier step exports."""

    __slots__ = ("action", "output", "resume_data", "runs", "status", "suspend_data")
    output: Any
    resume_data: Any
    suspend_data: Any
    action: str | None
    status: str
    runs: int

    def __init__(self, output: Any, resume_data: Any, suspend_data: Any, action: str | None,
                 status: str, runs: int) -> None:
        self._set(output=output, resume_data=resume_data, suspend_data=suspend_data,
                  action=action, status=status, runs=runs)


class StepsView(Mapping[str, StepExports]):
    """Read-only mapping of step id to its exports, each made when first read."""

    def __init__(self, step_ids: list[str], export: Callable[[str], StepExports]) -> None:
        self._ids = step_ids
        self._export = export
        self._made: dict[str, StepExports] = {}

    def __getitem__(self, step_id: str) -> StepExports:
        made = self._made.get(step_id)
        if made is None:
            if step_id not in self._ids:
                raise KeyError(
                    f"no step {step_id!r} in this workflow (steps: {', '.join(self._ids)})")
            made = self._made[step_id] = self._export(step_id)
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class Context:
    """The `ctx` a step function receives."""

    def __init__(
        self,
        *,
        input: Any,
        run_id: str,
        workflow: str,
        step: str,
        steps: StepsView,
        run: RunInfo,
        flow: Flow,
        item: Any = None,
        index: int | None = None,
        on_log: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self._input = input
        self._input_detached = False
        self.run_id = run_id
        self.workflow = workflow
        self.step = step
        self.steps = steps
        self.run = run
        self.flow = flow
        self.item = item
        self.index = index
        self._log: Any = None
        self._log_records: list[dict[str, Any]] = []
        self._on_log = on_log  # the engine's output capture (`wfrun logs`)

    @property
    def input(self) -> Any:
        """The run's input: this execution's own copy (changing it changes nothing stored)."""
        if not self._input_detached:
            self._input, self._input_detached = detached(self._input), True
        return self._input

    @input.setter
    def input(self, value: Any) -> None:
        self._input, self._input_detached = value, True

    @property
    def log(self) -> Any:
        """A `logging.Logger` whose records are kept in the run's history (type `log`)."""
        if self._log is None:
            from wfrun._steplog import step_logger

            self._log = step_logger(f"wfrun.{self.workflow}.{self.step}", self._log_records,
                                    self._on_log)
        return self._log

    def log_records(self) -> list[dict[str, Any]]:
        """What the step logged through `ctx.log`, as `{"level", "message"}` records."""
        return self._log_records

    def __repr__(self) -> str:
        return f"<Context run={self.run_id} workflow={self.workflow} step={self.step}>"
