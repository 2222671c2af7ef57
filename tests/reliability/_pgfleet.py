"""Harness of the PostgreSQL proofs: a project of small workflows whose steps log every attempt
to a side file, `wfrun tick --watch` workers and `wfrun serve` servers as real processes over
one database, and the figures a proof prints.

The side file (the *ledger*) gets one line per step attempt, written when the attempt begins:
`RUN STEP RUNS PGID PID UNIXTIME NOTE`. Every worker and server is started in a process group
of its own, so PGID says which process (or forked tick child) executed the attempt, and a
worker killed with its group can be told from the ones that lived. A step then sleeps
`WFRUN_TEST_STEP_SLEEP` seconds (given to workers only), which widens the window in which a
kill lands mid-step.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest

REPO = Path(__file__).resolve().parent.parent.parent

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
_INFO = re.compile(r"wfrun serve: |links point to |\S+ \[[^]]+\] \"")


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


@contextmanager
def exclusive() -> Iterator[None]:
    """Hold the lock of the heavy proofs: each uses some 50 of the test server's connections
    (100 in all, shared by every test running), so two of them never run at once, whatever
    pytest-xdist worker runs them."""
    with open(Path(tempfile.gettempdir()) / "wfrun-pg-proofs.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextmanager
def database() -> Iterator[str]:
    """A store URL on a new database of the test server, dropped on exit: every backend of
    its `current_database()` is then this test's (a schema of the shared one would not do for
    terminating them all)."""
    import psycopg

    from wfrun.store.postgres import _connect

    _pg.require()
    name = f"wfrun_proof_{secrets.token_hex(5)}"
    with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(_pg.server_url())._replace(path=f"/{name}"))
    try:
        yield url
    finally:
        _connect.close(url)
        with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without any WFRUN_ variable, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    env.update(extra)
    return env


class Proc:
    """A wfrun process in a group of its own, its stdout and stderr in files."""

    def __init__(self, fleet: Fleet, role: str, args: list[str], env: dict[str, str]) -> None:
        fleet.started += 1
        self.name = f"{role}{fleet.started}"
        self.out = fleet.logs / f"{self.name}.out"
        self.err = fleet.logs / f"{self.name}.err"
        with self.out.open("wb") as out, self.err.open("wb") as err:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "wfrun", "--store", fleet.url, "--workflows-dir",
                 str(fleet.workflows), *args],
                cwd=fleet.root, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                start_new_session=True)
        self.pgid = self.popen.pid  # the leader of its new session and group
        self.killed = False
        self.started_at = time.time()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> float:
        """SIGKILL the process and every child it forked; the time it was done."""
        at = time.time()
        os.killpg(self.pgid, signal.SIGKILL)
        self.popen.wait(timeout=30)
        self.killed = True
        return at

    def signal(self, signum: int) -> None:
        os.killpg(self.pgid, signum)

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM and wait for the exit code (SIGKILL, and a failure, after `timeout`)."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.pgid, signal.SIGKILL)
                self.popen.wait()
                pytest.fail(f"{self.name} did not stop within {timeout}s of SIGTERM")
        with_children = [pid for pid in _group(self.pgid) if pid != self.popen.pid]
        if with_children:  # forked tick children left behind
            os.killpg(self.pgid, signal.SIGKILL)
            pytest.fail(f"{self.name} left processes {with_children} running after it exited")
        return int(self.popen.returncode)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")


def _group(pgid: int) -> list[int]:
    """The processes of a process group that are still there (zombies included)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            pids.append(int(entry.name))
    return pids


class Fleet:
    """Workers and servers over one database, for one test.

    Each worker forks at most two tick children and each server has two background workers
    (`--workers 2`): every wfrun process keeps a connection of its own and a pool, and the
    test server's 100 connections are shared by every test running at the time."""

    def __init__(self, root: Path, url: str, lease: str = "2s", step_sleep: float = 0.0,
                 interval: float = 0.5) -> None:
        self.root, self.url, self.lease = root, url, lease
        self.step_sleep, self.interval = step_sleep, interval
        self.workflows = write_project(root)
        self.ledger = root / "ledger.txt"
        self.logs = root / "logs"
        self.logs.mkdir(exist_ok=True)
        self.started = 0
        self.procs: list[Proc] = []

    def env(self, step_sleep: float = 0.0) -> dict[str, str]:
        return clean_env(WFRUN_LEASE=self.lease, WFRUN_TEST_LEDGER=str(self.ledger),
                         WFRUN_TEST_STEP_SLEEP=str(step_sleep))

    def worker(self, *extra: str) -> Proc:
        """A `wfrun tick --watch` worker."""
        proc = Proc(self, "worker", ["tick", "--watch", "--interval", str(self.interval),
                                     "--workers", "2", *extra], self.env(self.step_sleep))
        self.procs.append(proc)
        return proc

    def server(self) -> tuple[Proc, str]:
        """A `wfrun serve` on a free port, and its base URL once it listens."""
        proc = Proc(self, "server", ["serve", "--port", "0", "--workers", "2"], self.env())
        self.procs.append(proc)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = re.search(r"listening on (http://127\.0\.0\.1:\d+)", proc.out.read_text())
            if found:
                return proc, found[1]
            if not proc.alive():
                pytest.fail(f"{proc.name} exited {proc.popen.returncode}: {proc.stderr()}")
            time.sleep(0.05)
        pytest.fail(f"{proc.name} did not listen within 60s: {proc.stderr()}")

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """One `wfrun` command as a cold process."""
        return subprocess.run(
            [sys.executable, "-m", "wfrun", "--store", self.url, "--workflows-dir",
             str(self.workflows), *args], capture_output=True, text=True, timeout=timeout,
            cwd=self.root, env=self.env())

    def attempts(self) -> list[Attempt]:
        return read_ledger(self.ledger)

    def shutdown(self) -> dict[str, int]:
        """Stop every process still running; their exit codes by name."""
        return {proc.name: proc.stop() for proc in self.procs if not proc.killed}

    def abandon(self) -> None:
        """Kill whatever is left (a test that failed half-way)."""
        for proc in self.procs:
            if proc.alive() or _group(proc.pgid):
                os.killpg(proc.pgid, signal.SIGKILL)
                proc.popen.wait()

    def bad_output(self) -> dict[str, list[str]]:
        """Per process, the stderr lines that are not one sentence of wfrun's: a traceback (or
        any line it shows), a line that goes on in the next one, a library's log record naming
        an object (`<psycopg.Connection [BAD] at 0x...>`)."""
        found: dict[str, list[str]] = {}
        for proc in self.procs:
            bad = [line for line in proc.stderr().splitlines() if line.strip() and (
                line[0].isspace() or "Traceback" in line or line.rstrip().endswith(":")
                or re.search(r"<[\w.]+ .*at 0x[0-9a-f]+>", line)
                or not (_INFO.match(line) or re.match(r"[a-z(]", line)))]
            if bad:
                found[proc.name] = bad[:10]
        return found

    def said(self, pattern: str) -> list[str]:
        """Every stderr line of every process that matches `pattern`."""
        return [line for proc in self.procs for line in proc.stderr().splitlines()
                if re.search(pattern, line)]

    def complaints(self) -> list[str]:
        """What the processes said on stderr besides serve's start, stop and access lines and
        the warnings a first failed attempt of a `flaky` step causes."""
        return [line for proc in self.procs for line in proc.stderr().splitlines()
                if line.strip() and not _INFO.match(line) and "the first attempt fails" not in line]


@dataclass
class Figures:
    """What a proof measured, printed under the test's name where CI's log shows it."""

    title: str
    rows: list[tuple[str, Any]]

    def add(self, name: str, value: Any) -> None:
        self.rows.append((name, value))

    def lines(self) -> Iterator[str]:
        yield f"[{self.title}]"
        width = max((len(name) for name, _ in self.rows), default=0)
        for name, value in self.rows:
            yield f"    {name.ljust(width)}  {value}"


def show_figures(figures: Figures, capsys: pytest.CaptureFixture[str],
                 record_property: Any) -> None:
    """Print the figures on the terminal's stderr, past pytest's capture (a pytest-xdist worker
    forwards its stderr, not its stdout, to the terminal), and keep them as test properties
    (JUnit XML)."""
    text = "\n".join(figures.lines())
    with capsys.disabled():
        sys.stderr.write(f"\n{text}\n")
        sys.stderr.flush()
    for name, value in figures.rows:
        record_property(f"{figures.title}: {name}", str(value))
