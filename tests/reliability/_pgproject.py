"""The project the PostgreSQL proofs run: small workflows whose steps log every attempt to a
side file (the *ledger*), and how to read it back.

The workflows are the file-store trials' (`_workflows`), written with the proofs' parameters.
A ledger line is written when an attempt begins: `RUN STEP RUNS PGID PID UNIXTIME NOTE`. Every
worker and server is started in a process group of its own, so PGID says which process (or
forked tick child) executed the attempt, and a worker killed with its group can be told from
the ones that lived. A step then sleeps `WFRUN_TEST_STEP_SLEEP` seconds (given to workers
only), which widens the window in which a kill lands mid-step.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import _workflows

PG_WORKFLOWS = ("ask", "poll", "nap", "flaky", "pipeline")


@dataclass(frozen=True)
class Attempt:
    """One line of the ledger: a step attempt as it began."""

    run_id: str
    step: str
    runs: int
    pgid: int
    pid: int
    at: float
    note: str

    @property
    def key(self) -> tuple[str, str, int]:
        return (self.run_id, self.step, self.runs)


def write_project(root: Path) -> Path:
    """The workflows of the proofs in `root/workflows` (a retry has five attempts, for the
    ones a killed worker costs; the last steps return what they did, which `_pgverify` checks)."""
    return _workflows.write_workflows(root / "workflows", PG_WORKFLOWS, max_attempts=5,
                                      processes=True, sleep_first=False, outputs=True)


def read_ledger(path: Path) -> list[Attempt]:
    """Every attempt logged so far (a line being written is left for the next read)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().decode().split("\n")[:-1]:
        run_id, step, runs, pgid, pid, at, note = [*line.split(" ", 6), ""][:7]
        rows.append(Attempt(run_id, step, int(runs), int(pgid), int(pid), float(at), note))
    return rows
