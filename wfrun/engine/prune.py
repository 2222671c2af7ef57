"""`wfrun prune`: delete finished runs older than a cutoff, each with its child runs."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from wfrun.durations import to_iso
from wfrun.errors import NotFoundError, WfrunError
from wfrun.model import FINISHED
from wfrun.store.queries import RunSummary

from .queries import row

if TYPE_CHECKING:
    from .core import Engine


@dataclass
class PruneReport:
    """What a prune deleted (or, dry, would delete) and what it could not."""

    cutoff: str
    runs: list[dict[str, Any]] = field(default_factory=list)  # `list` rows, parents first
    errors: list[dict[str, str]] = field(default_factory=list)  # {"run_id", "message"}
    unreadable: list[str] = field(default_factory=list)  # snapshots that could not be read


def prune(engine: Engine, older_than: timedelta, statuses: Iterable[str] = FINISHED,
          workflow: str | None = None, dry_run: bool = False) -> PruneReport:
    """Delete every finished top-level run of `statuses` (and `workflow`) last changed before
    now - `older_than`, with its child runs; a run with a child run still open is kept.

    A child run is never deleted on its own while its parent is kept: the parent's document
    names it. One whose parent is gone counts as a top-level run."""
    report = PruneReport(cutoff(engine, older_than))
    # Every run's summary (`Store.find_runs`): the family of a run is known by its children's
    # parent, whatever their status, and age is each run's last change.
    page = engine.store.find_runs(top_level=False)
    report.unreadable.extend(str(problem) for problem in page.problems)
    runs = {run.run_id: run for run in page.runs}
    children: dict[str, list[RunSummary]] = {}
    for run in sorted(runs.values(), key=lambda r: r.run_id):
        if run.parent in runs:
            children.setdefault(run.parent, []).append(run)
    wanted = set(statuses)
    for run in sorted(runs.values(), key=lambda r: (r.updated_at, r.run_id)):
        if run.parent in runs or run.status not in wanted \
                or run.updated_at >= report.cutoff \
                or (workflow is not None and run.workflow != workflow):
            continue
        family = _family(run, children)
        if not all(member.status in FINISHED for member in family):
            continue
        for member in family:  # the parent first: a crash leaves children, pruned next time
            if not dry_run:
                try:
                    engine.store.delete(member.run_id)
                except NotFoundError:
                    continue  # deleted meanwhile
                except WfrunError as exc:
                    report.errors.append({"run_id": member.run_id, "message": exc.message})
                    break
            report.runs.append(row(member))
    return report


def cutoff(engine: Engine, older_than: timedelta) -> str:
    """The time before which a finished run last changed is pruned: now - `older_than`."""
    return to_iso(engine.clock.now() - older_than)


def _family(run: RunSummary, children: dict[str, list[RunSummary]]) -> list[RunSummary]:
    """The run and its child runs, nested ones included, parents before their children."""
    family = [run]
    for child in children.get(run.run_id, []):
        family.extend(_family(child, children))
    return family
