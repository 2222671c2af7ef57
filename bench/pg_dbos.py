"""DBOS Transact's workloads of bench/pg.py, on the same server in the same run: its commits and
time per step, and its rate over queued workflows. DBOS runs from a virtualenv of its own
(made here if missing: `python3 -m venv`, then pip), never from wfrun's; bench/pg_dbos_app.py
is the program it runs."""

from __future__ import annotations

import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
from pg_server import Server, without_options

APP = Path(__file__).resolve().parent / "pg_dbos_app.py"
WANTED = ("dbos>=3.4,<3.5", "dbos")  # 3.4 (what SPEC §10 quotes), else the newest there is


def ensure_venv(path: Path) -> tuple[Path | None, str]:
    """The DBOS virtualenv's Python (made and filled if missing), or None and why not."""
    python = path / "bin" / "python"
    if not python.exists():
        base = shutil.which("python3") or sys.executable
        made = subprocess.run([base, "-m", "venv", str(path)], capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"python3 -m venv {path} failed: {made.stderr.strip()[-300:]}"
    if _app(python, "describe").returncode != 0:
        why = ""
        for requirement in WANTED:
            got = subprocess.run([str(python), "-m", "pip", "install", "-q", requirement],
                                 capture_output=True, text=True)
            if got.returncode == 0:
                break
            why = got.stderr.strip().splitlines()[-1] if got.stderr.strip() else "pip failed"
        probe = _app(python, "describe")
        if probe.returncode != 0:
            lines = (why or probe.stderr.strip() or "unknown error").splitlines()
            return None, f"DBOS could not be installed in {path}: {lines[-1]}"
    return python, ""


def _app(python: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(python), str(APP), *args], capture_output=True, text=True)


def describe(python: Path) -> dict[str, Any]:
    """DBOS's version and the settings of the benchmark's queue."""
    got: dict[str, Any] = json.loads(_app(python, "describe").stdout)
    return got


def _run(python: Path, *args: str) -> tuple[float, str]:
    t0 = time.perf_counter()
    proc = _app(python, *args)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"DBOS {args[0]} exited {proc.returncode}: {proc.stderr[-400:]}")
    return elapsed, proc.stdout


class CommandSteps:
    """A process that launches DBOS and runs one workflow of N trivial steps (`@DBOS.step`),
    on a schema of its own (pg_steps)."""

    def __init__(self, server: Server, database: str, python: Path, lengths: tuple[int, ...]
                 ) -> None:
        self.database, self.python = database, python
        self.url = without_options(server.database_url(database))
        for n in lengths:  # warm: DBOS's tables made
            _run(python, "steps", self.url, "dbos_steps", str(n))

    def sample(self, n: int) -> dict[str, float]:
        """One workflow of `n` steps: the process's wall time and the workflow's own."""
        elapsed, out = _run(self.python, "steps", self.url, "dbos_steps", str(n))
        return {"seconds": elapsed, "inside_seconds": float(json.loads(out)["workflow_s"])}


def queue(server: Server, db: str, python: Path, count: int, workers: int) -> dict[str, Any]:
    """`count` one-step workflows enqueued with a 1 s delay (a fixture: 1,000 a transaction),
    then `workers` DBOS processes started at once that dequeue and run them: the seconds from
    their start until every one has succeeded, and the commits per workflow (the bench's own
    polling subtracted)."""
    url = without_options(server.database_url(db))
    schema = f"dbos_queue{workers}"
    enqueueing, _ = _run(python, "enqueue", url, schema, str(count))
    time.sleep(1.0)  # every workflow's delay is over before the workers start
    floors = server.floor(100)
    before = server.commits(db)
    polls = 1  # the polling connection's own start is a transaction too
    done = 0
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-dbos-") as tmp:
        logs = [Path(tmp) / f"worker{i}.err" for i in range(workers)]
        t0 = time.perf_counter()
        procs = []
        for log in logs:
            with log.open("wb") as err:
                procs.append(subprocess.Popen([str(python), str(APP), "worker", url, schema],
                                              stdout=subprocess.DEVNULL, stderr=err))
        try:
            with psycopg.connect(server.database_url(db), autocommit=True) as conn:
                deadline = time.monotonic() + 900
                while time.monotonic() < deadline and all(p.poll() is None for p in procs):
                    row = conn.execute(f'SELECT count(*) FROM "{schema}".workflow_status '
                                       "WHERE status = 'SUCCESS'").fetchone()
                    polls += 1
                    done = int(row[0]) if row else 0
                    if done >= count:
                        break
                    time.sleep(0.05)
            elapsed = time.perf_counter() - t0
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
            codes = [_ended(proc) for proc in procs]
        errors = [line for log in logs for line in log.read_text(errors="replace").splitlines()
                  if line]
    commits = server.commits(db) - before - polls
    floor = statistics.median(floors + server.floor(100))  # before and after the run
    return {"workers": workers, "seconds": elapsed, "completed": done, "per_s": done / elapsed,
            "floor_ms": floor * 1000, "vs_commit_rate": done / elapsed * floor,
            "commits_per_workflow": commits / count, "exit_codes": codes,
            "stderr": errors[:5], "enqueueing_s": enqueueing}


def _ended(proc: subprocess.Popen[bytes]) -> int:
    """The exit code of a worker sent SIGTERM; killed (-9) if it is not gone within 60 s (a
    loaded host can keep DBOS's shutdown waiting on its threads)."""
    try:
        return proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return proc.wait()
