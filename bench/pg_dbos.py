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
import time
from pathlib import Path
from typing import Any

import psycopg
from pg_server import Server, without_options
from pg_wfrun import slope

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
            lines = (probe.stderr.strip() or why or "unknown error").splitlines()
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


def steps(server: Server, db: str, python: Path, lengths: tuple[int, int], reps: int
          ) -> dict[str, Any]:
    """A process that launches DBOS and runs one workflow of N trivial steps (`@DBOS.step`),
    for two lengths, `reps` times each in alternation with floor commits: commits of each
    process (median), wall time and the workflow's own time; per step is the slope."""
    url = without_options(server.database_url(db))
    schema = "dbos_steps"
    for n in lengths:  # warm: DBOS's tables made
        _run(python, "steps", url, schema, str(n))
    commits: dict[int, list[int]] = {n: [] for n in lengths}
    times: dict[int, list[float]] = {n: [] for n in lengths}
    inside: dict[int, list[float]] = {n: [] for n in lengths}
    floors: list[float] = []
    for _ in range(reps):
        for n in lengths:
            floors += server.floor(db, 10)
            before = server.commits(db)
            elapsed, out = _run(python, "steps", url, schema, str(n))
            commits[n].append(server.commits(db) - before)
            times[n].append(elapsed)
            inside[n].append(json.loads(out)["workflow_s"])
    per_commit, const_commit = slope({n: statistics.median(c) for n, c in commits.items()})
    per_time, const_time = slope({n: statistics.median(t) for n, t in times.items()})
    per_inside, _ = slope({n: statistics.median(t) for n, t in inside.items()})
    floor = statistics.median(floors)
    return {"steps_lengths": list(lengths), "steps_reps": reps,
            "commits_by_length": {str(n): c for n, c in commits.items()},
            "commits_per_step": per_commit, "commits_per_command": const_commit,
            "per_step_ms": per_time * 1000, "command_constant_ms": const_time * 1000,
            "floor_beside_steps_ms": floor * 1000, "per_step_in_commits": per_time / floor,
            "in_process_per_step_ms": per_inside * 1000,
            "in_process_per_step_in_commits": per_inside / floor}


def queue(server: Server, db: str, python: Path, count: int, workers: int) -> dict[str, Any]:
    """`count` one-step workflows enqueued with a 1 s delay (a fixture: 1,000 a transaction),
    then `workers` DBOS processes started at once that dequeue and run them: the seconds from
    their start until every one has succeeded, and the commits per workflow (the bench's own
    polling subtracted)."""
    url = without_options(server.database_url(db))
    schema = f"dbos_queue{workers}"
    _run(python, "enqueue", url, schema, str(count))
    time.sleep(1.0)  # every workflow's delay is over before the workers start
    floors = server.floor(db, 100)
    before = server.commits(db)
    polls = 1  # the polling connection's own start is a transaction too
    t0 = time.perf_counter()
    procs = [subprocess.Popen([str(python), str(APP), "worker", url, schema],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for _ in range(workers)]
    done = 0
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
        codes = [proc.wait(timeout=60) for proc in procs]
    commits = server.commits(db) - before - polls
    floor = statistics.median(floors + server.floor(db, 100))  # before and after the run
    return {"workers": workers, "seconds": elapsed, "completed": done, "per_s": done / elapsed,
            "floor_ms": floor * 1000, "vs_commit_rate": done / elapsed * floor,
            "commits_per_workflow": commits / count, "exit_codes": codes}
