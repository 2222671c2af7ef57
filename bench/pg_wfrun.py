"""wfrun's workloads of bench/pg.py, each through the real command line in subprocesses:
commits and time per step, due reruns fired by concurrent `tick` processes, and the recovery
of a run whose worker was killed mid-step."""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import psycopg
from pg_server import Server

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

SEED_NOW = "2026-01-01T00:00:00Z"  # the clock the due runs are made at (their rerun: +1 s)
TICK_NOW = "2026-01-01T01:00:00Z"  # the time the due ticks are told it is
RECOVERY_INTERVAL = 1.0  # `tick --watch --interval` of the worker that recovers the run


def write_workflows(root: Path, lengths: tuple[int, ...]) -> Path:
    """The benchmark's workflows: `chainN` (N trivial steps), `poll` (reruns once, 1 s later)
    and `recover` (sleeps 1 s, then a step that hangs on its first execution)."""
    wf = root / "workflows"
    wf.mkdir(parents=True, exist_ok=True)
    for n in lengths:
        steps = "\n".join(f"  - id: s{i}\n    handler: noop" for i in range(n))
        (wf / f"chain{n}.yaml").write_text(f"steps:\n{steps}\n")
        (wf / f"chain{n}.py").write_text("def noop(ctx):\n    return 1\n")
    (wf / "poll.yaml").write_text("steps:\n  - id: poll\n")
    (wf / "poll.py").write_text(textwrap.dedent("""\
        def poll(ctx):
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s", None, 3)
            return ctx.run.runs
        """))
    (wf / "recover.yaml").write_text("steps:\n  - id: nap\n  - id: hang\n")
    (wf / "recover.py").write_text(textwrap.dedent("""\
        import os, time

        def nap(ctx):
            ctx.flow.sleep("1s")

        def hang(ctx):
            # The first execution writes `first` and hangs (its worker is killed); the next
            # one, by the worker that recovered the run, writes `second` and returns.
            first = os.path.join(ctx.input["dir"], "first")
            if not os.path.exists(first):
                with open(first, "w") as fh:
                    fh.write(f"{os.getpid()} {time.time()}")
                time.sleep(600)
            with open(os.path.join(ctx.input["dir"], "second"), "w") as fh:
                fh.write(f"{os.getpid()} {time.time()}")
            return "done"
        """))
    return wf


def wfrun(url: str, wf: Path, *args: str) -> list[str]:
    """The command line of one wfrun command on the store `url`."""
    return [sys.executable, "-m", "wfrun", "--store", url, "--workflows-dir", str(wf), *args]


def run_ok(args: list[str], env: dict[str, str] | None = None) -> float:
    """Run a command to its end (raising if it fails); its wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run(args, capture_output=True, text=True, env={**os.environ, **(env or {})})
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(args[2:6])}... exited {proc.returncode}: {proc.stderr[-400:]}")
    return elapsed


class CommandSteps:
    """`wfrun start chainN` in a process of its own, on a schema of its own (pg_steps)."""

    def __init__(self, server: Server, database: str, wf: Path, lengths: tuple[int, ...]) -> None:
        self.server, self.database, self.wf = server, database, wf
        self.url = server.create_schema(database, "bench_steps")
        for n in lengths:  # warm: the tables made, each manifest cached
            run_ok(wfrun(self.url, wf, "start", f"chain{n}"))

    def sample(self, n: int) -> dict[str, float]:
        """One run of `n` steps: the command's wall time."""
        return {"seconds": run_ok(wfrun(self.url, self.wf, "start", f"chain{n}"))}

    def close(self) -> None:
        """Drop the schema."""
        self.server.drop_schema(self.database, "bench_steps")


class InProcessSteps:
    """The same runs started by wfrun's engine in this process (no interpreter start to
    subtract: a steadier figure), on CommandSteps' schema. Its connections are opened before
    the timing and closed after each run (so that the server reports its commits)."""

    def __init__(self, database: str, url: str, wf: Path) -> None:
        from wfrun.clock import SystemClock
        from wfrun.engine import Engine
        from wfrun.store.postgres import PostgresStore

        self.database = database
        self.store = PostgresStore(url)
        self.engine = Engine(self.store, SystemClock(), workflows_dir=str(wf))

    def sample(self, n: int) -> dict[str, float]:
        """One run of `n` steps: the engine's start, timed."""
        self.store.exists("warm")  # the connection made and the schema checked beforehand
        t0 = time.perf_counter()
        self.engine.start(f"chain{n}")
        elapsed = time.perf_counter() - t0
        self.store.close()
        return {"seconds": elapsed}


def seed_due(url: str, wf: Path, count: int) -> None:
    """`count` runs of `poll` whose rerun is due at SEED_NOW + 1 s: one made by the engine,
    the others stored from it by the store's own `create` (with synchronous_commit off for the
    seeding connections: a fixture, not a measurement)."""
    from wfrun.clock import FakeClock
    from wfrun.engine import Engine
    from wfrun.model import Run
    from wfrun.store.postgres import PostgresStore

    store = PostgresStore(url)
    engine = Engine(store, FakeClock(SEED_NOW), workflows_dir=str(wf))
    template = engine.start("poll", run_id="due000000").run.to_dict()
    for i in range(1, count):
        store.create(Run.from_dict({**template, "run_id": f"due{i:06d}"}))
    due = len(store.due(TICK_NOW))
    store.close()
    if due != count:
        raise RuntimeError(f"{due} of the {count} seeded runs are due")


def due_reruns(server: Server, db: str, wf: Path, count: int, workers: int) -> dict[str, Any]:
    """`count` due reruns fired by `workers` `tick --workers 1` processes started at once (a
    fresh schema): rate, the floor (commits just before and just after), commits per rerun (the
    processes' start included), runs completed."""
    schema = f"bench_due{workers}"
    url = server.create_schema(db, schema)
    seeding = time.perf_counter()
    seed_due(server.database_url(db, schema, ["synchronous_commit=off"]), wf, count)
    seeding = time.perf_counter() - seeding
    floors = server.floor(100)
    before = server.commits(db)
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-due-") as tmp:
        logs = [Path(tmp) / f"tick{i}.err" for i in range(workers)]
        t0 = time.perf_counter()
        procs = []
        for log in logs:
            with log.open("wb") as err:
                procs.append(subprocess.Popen(
                    wfrun(url, wf, "tick", "--now", TICK_NOW, "--workers", "1"),
                    stdout=subprocess.DEVNULL, stderr=err))
        codes = [proc.wait(timeout=900) for proc in procs]
        elapsed = time.perf_counter() - t0
        errors = [line for log in logs for line in log.read_text(errors="replace").splitlines()
                  if line]
    commits = server.commits(db) - before
    with psycopg.connect(url, autocommit=True) as conn:
        done = conn.execute("SELECT count(*) FROM wfrun_runs WHERE status = 'completed'").fetchone()
    floor = statistics.median(floors + server.floor(100))  # before and after the ticks
    server.drop_schema(db, schema)
    completed = int(done[0]) if done else 0
    return {"workers": workers, "seconds": elapsed, "completed": completed,
            "per_s": completed / elapsed, "floor_ms": floor * 1000,
            "vs_commit_rate": completed / elapsed * floor, "commits_per_rerun": commits / count,
            "exit_codes": codes, "stderr": errors[:5], "seeding_s": seeding}


def recovery(server: Server, db: str, wf: Path, lease: float, trials: int) -> dict[str, Any]:
    """A `tick --watch` worker stopped while its step runs (WFRUN_LEASE=`lease`), and another,
    already watching (`--interval` RECOVERY_INTERVAL), that recovers the run: the seconds from
    the stop until the step executes again and until the run has completed. Two ways to stop:
    `kill` (kill -9: the server sees its connections close) and `stop` (SIGSTOP: its
    connections stay open, so only the lease's expiry frees the run), `trials` times each."""
    url = server.create_schema(db, "bench_recovery")
    env = {"WFRUN_LEASE": f"{lease:g}"}
    got: dict[str, Any] = {"lease_s": lease, "watch_interval_s": RECOVERY_INTERVAL}
    with tempfile.TemporaryDirectory(prefix="wfrun-bench-recover-") as tmp:
        for how in ("kill", "stop"):
            samples = []
            for trial in range(trials):
                marks = Path(tmp) / f"{how}{trial}"
                marks.mkdir()
                run_id = f"recover-{how}{trial}"
                run_ok(wfrun(url, wf, "start", "recover", "--run-id", run_id,
                             "--input", json.dumps({"dir": str(marks)})), env)
                samples.append(_recover_once(url, wf, env, marks, run_id, how))
            ok = [s["to_completed_s"] for s in samples if s["to_completed_s"] is not None]
            got[how] = {"trials": samples, "recovered": len(ok),
                        "median_s": statistics.median(ok) if ok else None,
                        "max_s": max(ok) if ok else None}
    server.drop_schema(db, "bench_recovery")
    return got


def _recover_once(url: str, wf: Path, env: dict[str, str], marks: Path, run_id: str, how: str
                  ) -> dict[str, Any]:
    def watcher(interval: float) -> subprocess.Popen[bytes]:
        return subprocess.Popen(wfrun(url, wf, "tick", "--watch", "--interval", f"{interval:g}"),
                                env={**os.environ, **env}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, start_new_session=True)

    first, second = marks / "first", marks / "second"
    doomed = watcher(0.2)
    rescuer = None
    try:
        _wait_for(first.exists, 60, "the first worker to start the step")
        rescuer = watcher(RECOVERY_INTERVAL)
        time.sleep(2.0)  # the second worker is up and watching; the first holds the run
        early = second.exists()
        stopped = time.time()
        os.killpg(doomed.pid, signal.SIGKILL if how == "kill" else signal.SIGSTOP)
        status = ""
        with psycopg.connect(url, autocommit=True) as conn:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                row = conn.execute("SELECT status FROM wfrun_runs WHERE run_id = %s",
                                   [run_id]).fetchone()
                status = row[0] if row else "missing"
                if status in ("completed", "failed"):
                    break
                time.sleep(0.02)
        done = time.time()
    finally:
        if doomed.poll() is None:
            os.killpg(doomed.pid, signal.SIGKILL)  # (a stopped one too)
        doomed.wait()
        if rescuer is not None and rescuer.poll() is None:
            os.killpg(rescuer.pid, signal.SIGTERM)
            try:
                rescuer.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(rescuer.pid, signal.SIGKILL)
                rescuer.wait()
    again = float(second.read_text().split()[1]) - stopped if second.exists() else None
    return {"status": status, "taken_over_before_stop": early, "to_step_again_s": again,
            "to_completed_s": done - stopped if status == "completed" else None}


def _wait_for(condition: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.01)
