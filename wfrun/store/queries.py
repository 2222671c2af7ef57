"""What the store's queries answer with (`Store.find_runs`, `Store.pending`): a run's summary,
a page of them with its cursor, their order, and which runs wait for data."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from wfrun.errors import UsageError
from wfrun.ids import RUN_ID_PATTERN
from wfrun.model import FINISHED, SUSPENDED, Run, StepState


class RunSummary:
    """What `wfrun list` shows of a run (SPEC §4, `list --json`), and its parent run's id.

    Runs are listed newest first: by `created_at`, then by `run_id`, both descending. `cursor`
    is what `Store.find_runs` takes as `before` to go on after this run. (A plain class with
    slots, not a dataclass: every command imports this module.)"""

    __slots__ = ("created_at", "next_due", "parent", "run_id", "status", "updated_at", "workflow")

    def __init__(self, run_id: str, workflow: str, status: str, created_at: str,
                 updated_at: str, next_due: str | None = None, parent: str | None = None) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.status = status
        self.created_at = created_at
        self.updated_at = updated_at
        self.next_due = next_due  # the earliest timer or deadline of a run not finished
        self.parent = parent  # the parent run's id, for a child run (a `workflow:` step's)

    @classmethod
    def of(cls, run: Run) -> RunSummary:
        """The summary of a run as it is stored."""
        dues = [] if run.status in FINISHED else [
            due for state in run.steps.values() for due in state.due_times()]
        parent = run.parent.get("run_id") if run.parent is not None else None
        return cls(run.run_id, run.workflow, run.status, run.created_at, run.updated_at,
                   min(dues) if dues else None, parent if isinstance(parent, str) else None)

    @property
    def cursor(self) -> str:
        """Where a page that ends with this run ends: `find_runs(before=...)` goes on after it."""
        return f"{self.created_at}~{self.run_id}"

    def __repr__(self) -> str:
        return "RunSummary(" + ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__) + ")"

    def __eq__(self, other: object) -> bool:
        return type(other) is RunSummary and all(
            getattr(self, k) == getattr(other, k) for k in self.__slots__)


class RunPage:
    """One answer of `Store.find_runs`: the runs, how many more match, and what could not be
    read. Unpacks as `runs, more, problems`."""

    __slots__ = ("more", "problems", "runs")

    def __init__(self, runs: list[RunSummary], more: int = 0,
                 problems: list[Exception] | None = None) -> None:
        self.runs = runs
        self.more = more  # runs that match beyond these (see find_runs)
        self.problems: list[Exception] = [] if problems is None else problems

    def __iter__(self) -> Iterator[Any]:
        return iter((self.runs, self.more, self.problems))

    def __repr__(self) -> str:
        return f"RunPage(runs={self.runs!r}, more={self.more!r}, problems={self.problems!r})"


def newest_first(run: Run | RunSummary) -> tuple[str, str]:
    """The sort key of `find_runs` (use with `reverse=True`): creation time, then run id."""
    return run.created_at, run.run_id


def split_cursor(cursor: str) -> tuple[str, str]:
    """`(created_at, run_id)` of a `RunSummary.cursor`; UsageError if it is not one."""
    created, sep, run_id = cursor.rpartition("~")
    if not sep or not RUN_ID_PATTERN.fullmatch(run_id):
        raise UsageError(f"{cursor[:100]!r} is not a cursor of the run list "
                         "(it is the created time and run id of the last run listed)")
    return created, run_id


def has_suspension(run: Run) -> bool:
    """True if the run is not finished and one of its steps or foreach iterations waits for
    data (status `suspended`, SPEC §4): what `Store.pending` returns."""
    if run.status in FINISHED:
        return False
    return any(_suspended(state) for state in run.steps.values())


def _suspended(state: StepState) -> bool:
    return state.status == SUSPENDED or any(it.status == SUSPENDED
                                            for it in state.iterations or ())
