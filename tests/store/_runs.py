"""Runs as the store tests store them: small, with the statuses, due times, parents and
creation times each test needs."""

from __future__ import annotations

from wfrun.model import (
    COMPLETED,
    PAUSE_SUSPEND,
    RUNNING,
    SUSPENDED,
    WAITING,
    Run,
    StepState,
)


def make_run(run_id: str, due: str | None = None) -> Run:
    """A run suspended until `due` (or executing, when `due` is None)."""
    run = Run(run_id=run_id, workflow="wf", input={"n": 1}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", steps={"a": StepState()})
    if due is None:
        run.status = RUNNING
        run.running_since = "2026-01-01T00:00:00.000Z"
    else:
        run.status = SUSPENDED
        run.steps["a"].status = SUSPENDED
        run.steps["a"].pause = {"kind": PAUSE_SUSPEND, "since": run.created_at, "due_at": due,
                                "on_timeout": "cancel", "nonce": "n"}
    return run


def listed(run_id: str, created: str, workflow: str = "wf", status: str = "completed",
            parent: str | None = None) -> Run:
    """A run created at `created` in `status` (a suspended one waits at step `a` until 2030),
    the child of `parent` if given."""
    run = make_run(run_id)
    run.workflow, run.created_at, run.updated_at = workflow, created, created
    run.status, run.running_since = status, None
    if status == SUSPENDED:
        run.steps["a"].status = SUSPENDED
        run.steps["a"].pause = {"kind": PAUSE_SUSPEND, "since": created,
                                "due_at": "2030-01-01T00:00:00.000Z", "on_timeout": "cancel",
                                "nonce": "n"}
    if parent is not None:
        run.parent = {"run_id": parent, "step": "child", "index": None, "notified": status}
    return run


def run_of(run_id: str, status: str, *, day: int = 1, workflow: str = "wf",
           parent: str | None = None, second: int = 0) -> Run:
    """A run created on 2026-01-DAY in `status` (suspended at step `a` until the next month,
    waiting on a rerun, executing, or finished)."""
    created = f"2026-01-{day:02d}T00:00:{second:02d}.000Z"
    run = make_run(run_id, "2026-02-01T00:00:00.000Z" if status == SUSPENDED else None)
    run.workflow, run.created_at, run.updated_at = workflow, created, created
    if status == WAITING:
        run.status, run.running_since = WAITING, None
        run.steps["a"] = StepState(status=WAITING, pause={
            "kind": "rerun", "since": created, "due_at": "2026-03-01T00:00:00.000Z"})
    elif status not in (RUNNING, SUSPENDED):
        run.status, run.running_since = status, None
        run.steps["a"] = StepState(status=COMPLETED if status == COMPLETED else status, runs=1)
    if parent is not None:
        run.parent = {"run_id": parent, "step": "call", "index": None, "notified": None}
    return run
