"""The project the PostgreSQL proofs run: small workflows whose steps log every attempt to a
side file (the *ledger*), and how to read it back.

A ledger line is written when an attempt begins: `RUN STEP RUNS PGID PID UNIXTIME NOTE`. Every
worker and server is started in a process group of its own, so PGID says which process (or
forked tick child) executed the attempt, and a worker killed with its group can be told from
the ones that lived. A step then sleeps `WFRUN_TEST_STEP_SLEEP` seconds (given to workers
only), which widens the window in which a kill lands mid-step.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path

_LEDGER = '''
import os
import time


def _log(ctx, note=""):
    path = os.environ.get("WFRUN_TEST_LEDGER")
    if path:
        line = (f"{ctx.run_id} {ctx.step} {ctx.run.runs} {os.getpgid(0)} {os.getpid()} "
                f"{time.time():.3f} {note}\\n")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line.encode())
        finally:
            os.close(fd)
    delay = float(os.environ.get("WFRUN_TEST_STEP_SLEEP") or 0)
    if delay:
        time.sleep(delay)
'''

TOKEN_SCHEMA = "{type: object, required: [token], properties: {token: {type: string}}}"

# name -> (manifest, module): a suspension in code (its link goes to the ledger), a rerun, a
# sleep, a retry, and all of them in one run (its suspension a `wait` step).
WORKFLOWS: dict[str, tuple[str, str]] = {
    "ask": (f"""
        name: ask
        steps:
          - id: ask
            resume_schema: {TOKEN_SCHEMA}
          - id: answer
        """, """
        def ask(ctx):
            links = ctx.flow.suspend(timeout="3650d")
            _log(ctx, links.resume_url)
            return {"asked": ctx.run.runs}

        def answer(ctx):
            token = ctx.steps["ask"].resume_data["token"]
            _log(ctx, token)
            return token
        """),
    "poll": ("""
        name: poll
        steps:
          - id: poll
          - id: after
        """, """
        def poll(ctx):
            _log(ctx)
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s", context={"polled": 1})
            return {"runs": ctx.run.runs}

        def after(ctx):
            _log(ctx)
            return "done"
        """),
    "nap": ("""
        name: nap
        steps:
          - id: first
          - id: nap
            sleep: 1s
          - id: after
        """, """
        def first(ctx):
            _log(ctx)

        def after(ctx):
            _log(ctx)
            return "done"
        """),
    "flaky": ("""
        name: flaky
        steps:
          - id: flaky
            retry: {max_attempts: 5, delay: 1s}
          - id: after
        """, """
        def flaky(ctx):
            _log(ctx)
            if ctx.run.runs == 1:
                raise RuntimeError("the first attempt fails")
            return "ok"

        def after(ctx):
            _log(ctx)
            return "done"
        """),
    "pipeline": (f"""
        name: pipeline
        steps:
          - id: poll
          - id: approve
            wait: true
            timeout: 3650d
            resume_schema: {TOKEN_SCHEMA}
          - id: work
            retry: {{max_attempts: 5, delay: 1s}}
          - id: nap
            sleep: 1s
          - id: done
        """, """
        def poll(ctx):
            _log(ctx)
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s")

        def work(ctx):
            token = ctx.steps["approve"].resume_data["token"]
            _log(ctx, token)
            if ctx.run.runs == 1:
                raise RuntimeError("the first attempt fails")
            return token

        def done(ctx):
            _log(ctx)
            return "done"
        """),
}

# what serve prints on stderr besides its sentences: start and stop lines, the access log


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
    """The workflows of the proofs in `root/workflows`."""
    directory = root / "workflows"
    directory.mkdir(parents=True, exist_ok=True)
    for name, (manifest, module) in WORKFLOWS.items():
        (directory / f"{name}.yaml").write_text(textwrap.dedent(manifest))
        (directory / f"{name}.py").write_text(_LEDGER + textwrap.dedent(module))
    return directory


def read_ledger(path: Path) -> list[Attempt]:
    """Every attempt logged so far (a line being written is left for the next read)."""
    if not path.exists():
        return []
    rows = []
    for line in path.read_bytes().decode().split("\n")[:-1]:
        run_id, step, runs, pgid, pid, at, note = [*line.split(" ", 6), ""][:7]
        rows.append(Attempt(run_id, step, int(runs), int(pgid), int(pid), float(at), note))
    return rows
