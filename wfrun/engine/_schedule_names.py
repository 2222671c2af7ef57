"""Scheduled manifests that state one workflow name (SPEC §11). A schedule's kept state and the
ids of the runs it starts are the workflow name's, so two such schedules would share one state
(each tick seeing the other's timetable as a change) and one run per fire time: none of them
fires until all but one is renamed, as `wfrun validate` and `wfrun start NAME` refuse them."""

from __future__ import annotations

from wfrun._specs import Workflow
from wfrun.errors import ManifestError


def shared_names(workflows: list[Workflow]) -> tuple[list[Workflow], dict[str, ManifestError]]:
    """`workflows` without those whose name another of them states too, and for each such
    name the error that keeps their schedules from firing (naming every manifest)."""
    by_name: dict[str, list[Workflow]] = {}
    for workflow in workflows:
        by_name.setdefault(workflow.name, []).append(workflow)
    errors = {
        name: ManifestError(
            f"{len(same)} manifests are named {name!r} ({', '.join(w.path for w in same)}); "
            "rename all but one ('name:' must be unique): their schedules cannot fire until "
            "this is fixed (they would share one schedule state and one run per fire time)")
        for name, same in by_name.items() if len(same) > 1
    }
    return [w for w in workflows if w.name not in errors], errors
