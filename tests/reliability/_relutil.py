"""Helpers of the reliability suite: the suite's workflows, a warm process launcher, state checks.

Every workflow step appends `RUN STEP RUNS NOTE` to the ledger file named by the environment
variable `WFRUN_TEST_LEDGER` (one `write()` with O_APPEND), so a test can count how many times
each step attempt really executed (the workflows: `_workflows`).
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
import threading
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from wfrun.model import Run
from wfrun.store.file import FileStore

from . import _workflows

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

FILE_STORE_WORKFLOWS = ("flow", "poll", "nap", "flaky", "lapse", "pipeline")


def write_workflows(directory: Path) -> Path:
    """The suite's workflows in `directory`: a ledger line `RUN STEP RUNS NOTE`, written after a
    step's sleep (an attempt killed mid-step leaves none)."""
    return _workflows.write_workflows(directory, FILE_STORE_WORKFLOWS, max_attempts=3,
                                      processes=False, sleep_first=True, outputs=False)


def iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def future(days: float = 2) -> str:
    """A `tick --now` that fires every timer of the suite's workflows but no 3650d deadline."""
    return iso(datetime.now(UTC) + timedelta(days=days))


@dataclass
class Result:
    rc: int | None
    killed: bool
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def error_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.startswith("error:")]


class Warm:
    """A client of `_warm.py`: runs `wfrun` commands as forked, pre-imported processes."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "_warm.py")], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )
        self._lock = threading.Lock()

    def request(self, req: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        with self._lock:
            self.proc.stdin.write(json.dumps(req) + "\n")
            self.proc.stdin.flush()
            line = self.proc.stdout.readline()
        assert line, "the warm launcher died"
        reply: dict[str, Any] = json.loads(line)
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Lab:
    """One workflows directory and any number of state directories, driven through `Warm`."""

    def __init__(self, root: Path, warm: Warm) -> None:
        self.root = root
        self.warm = warm
        self.workflows = write_workflows(root / "workflows")

    def using(self, warm: Warm) -> Lab:
        """The same lab, driven through another launcher (one per thread)."""
        twin = copy.copy(self)
        twin.warm = warm
        return twin

    def args(self, state: Path) -> list[str]:
        return ["--state-dir", str(state), "--workflows-dir", str(self.workflows)]

    def env(self, state: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
        return {"WFRUN_TEST_LEDGER": f"{state}.ledger", **(extra or {})}

    def cmd(self, state: Path, *args: str, env: dict[str, str] | None = None,
            kill_after: float | None = None, record: str | None = None,
            umask: int | None = None) -> Result:
        reply = self.warm.request({"args": [*self.args(state), *args],
                                   "env": self.env(state, env), "kill_after": kill_after,
                                   "record": record, "umask": umask})
        return Result(reply["rc"], reply["killed"], reply["stdout"], reply["stderr"])

    def ok(self, state: Path, *args: str, env: dict[str, str] | None = None,
           record: str | None = None) -> Result:
        out = self.cmd(state, *args, env=env, record=record)
        assert out.rc == 0, (args, out)
        assert "Traceback" not in out.stderr, out.stderr
        return out

    def race(self, state: Path, commands: list[list[str]]) -> list[Result]:
        reply = self.warm.request({"race": [[*self.args(state), *c] for c in commands],
                                   "env": self.env(state)})
        return [Result(r["rc"], r["killed"], r["stdout"], r["stderr"]) for r in reply["results"]]

    def finish(self, state: Path, run_id: str, token: str = "finisher", now: str | None = None,
               rounds: int = 8) -> Run:
        """Drive a run to its end: tick what waits or was interrupted, resume what is suspended."""
        now = now or future()
        for _ in range(rounds):
            run = load(state, run_id)
            if run.finished:
                return run
            if run.status == "suspended":
                out = self.cmd(state, "resume", run_id, "--data", json.dumps({"token": token}))
                assert out.rc in (0, 3), out
            else:
                out = self.cmd(state, "tick", "--now", now)
                assert out.rc in (0, 1), out
            assert "Traceback" not in out.stderr, out.stderr
        raise AssertionError(f"run {run_id} did not finish: {load(state, run_id).status}")


def load(state: Path, run_id: str) -> Run:
    return FileStore(state).load(run_id)


def load_all(state: Path) -> dict[str, Run]:
    """Every run of a state directory; fails the test if any snapshot does not parse and verify."""
    runs: dict[str, Run] = {}
    for item in FileStore(state).iter_runs():
        assert not isinstance(item, Exception), f"corrupt snapshot: {item}"
        runs[item.run_id] = item
    return runs


def snapshot_ids(state: Path) -> set[str]:
    runs = state / "runs"
    if not runs.is_dir():
        return set()
    return {p.name[: -len(".json")] for p in runs.iterdir()
            if p.name.endswith(".json") and not p.name.startswith(".")}


def temp_files(state: Path) -> list[Path]:
    """Files an interrupted write left: temporary files, and spare names (`.NAME.spare`,
    `.NAME.prev`) that are a second name of the snapshot."""
    if not state.exists():
        return []
    return [p for p in state.rglob("*") if ".tmp-" in p.name or (
        p.name.startswith(".") and p.name.endswith((".spare", ".prev"))
        and p.stat().st_nlink > 1)]


def norm(run: Run) -> tuple[Any, ...]:
    """What identifies a state of a run across executions (times and tokens differ)."""
    return (run.revision, run.status,
            tuple((sid, s.status, s.runs) for sid, s in sorted(run.steps.items())))


def norm_snapshot(text: str) -> tuple[Any, ...]:
    envelope = json.loads(text)
    run = Run.from_dict(envelope["run"])
    return norm(run)


def ledger(state: Path) -> list[tuple[str, str, int, str]]:
    path = Path(f"{state}.ledger")
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        run_id, step, runs, note = [*line.split(" ", 3), ""][:4]
        rows.append((run_id, step, int(runs), note))
    return rows


def assert_no_attempt_twice(state: Path) -> list[tuple[str, str, int, str]]:
    """Each step attempt (run, step, runs) executed at most once, crashes included."""
    rows = ledger(state)
    twice = [k for k, n in Counter((r, s, n) for r, s, n, _ in rows).items() if n > 1]
    assert not twice, f"step attempts executed twice: {twice}"
    return rows


def copy_state(src: Path, dst: Path) -> None:
    if src.exists():
        shutil.copytree(src, dst, symlinks=True)
    ledger_src = Path(f"{src}.ledger")
    if ledger_src.exists():
        shutil.copy(ledger_src, f"{dst}.ledger")


def precreate_buckets(state: Path) -> None:
    """Make the due-index buckets of this hour and the next exist, so that the number of file
    operations of a command does not depend on whether it runs across an hour boundary."""
    now = datetime.now(UTC)
    for moment in (now, now + timedelta(hours=1)):
        bucket = state / "due" / moment.strftime("%Y%m%dT%H")
        bucket.mkdir(mode=0o700, parents=True, exist_ok=True)


def check_error_output(out: Result, state: Path) -> str:
    """One clear `error:` line naming a file under the state directory; no traceback."""
    assert "Traceback" not in out.stderr, out.stderr
    errors = out.error_lines()
    assert len(errors) == 1, out.stderr
    assert str(state) in errors[0], errors[0]
    return errors[0]

