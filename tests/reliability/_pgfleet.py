"""The processes of the PostgreSQL proofs: `wfrun tick --watch` workers and `wfrun serve`
servers over one database (each in a process group of its own, its output in files), the
databases they use, and the lock that keeps two heavy proofs from sharing the test server's
connections."""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest

from ._pgproject import Attempt, read_ledger, write_project

# what serve prints on stderr besides its sentences: start and stop lines, the access log
_INFO = re.compile(r"wfrun serve: |links point to |\S+ \[[^]]+\] \"")


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
