"""Benchmark wfrun against the physical floor on this machine (SPEC §9); run by hand, never in tests.

    python bench/run.py [--quick] [--idle 100000] [--queries 100000] [--out bench/results.json]
    python bench/run.py --store postgresql://USER@HOST:PORT/DB [--quick] [--json]  (SPEC §10: bench/pg.py)

Prints a table and writes JSON. Every figure is a median over repetitions; ratios compare
figures measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from wfrun.clock import FakeClock  # noqa: E402
from wfrun.engine import Engine  # noqa: E402
from wfrun.store import _fsops  # noqa: E402
from wfrun.store.file import FileStore  # noqa: E402

# The module each runtime dependency is imported as, where it is not the distribution's name.
MODULE_OF = {"pyyaml": "yaml"}


def dependency_imports(pyproject: Path = REPO / "pyproject.toml") -> str:
    """The statement importing every runtime dependency of wfrun (pyproject's
    `[project] dependencies`): the reference of the cold-resume target (SPEC §9)."""
    specs = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    names = [re.split(r"[<>=!~;\[ ]", spec, maxsplit=1)[0].strip().lower() for spec in specs]
    return "import " + ", ".join(MODULE_OF.get(name, name.replace("-", "_")) for name in names)


DEPS = dependency_imports()


def median_time(fn: Callable[[], Any], repeat: int) -> float:
    """Median wall time of `fn` in seconds."""
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t0)
    return statistics.median(samples)


# Peak memory (ru_maxrss) of a child is a high-water mark that survives fork and exec: a command
# started straight from this process, which has grown by seeding runs, would report this
# process's size. So each command is started by a small launcher process that forks it, and
# reports the command's own wall time and peak RSS.
_LAUNCHER = """\
import os, sys, time
t0 = time.perf_counter()
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
elapsed = time.perf_counter() - t0
with open(sys.argv[1], "w") as fh:
    fh.write(f"{elapsed} {usage.ru_maxrss}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


def launch(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run a command through the launcher: its wall seconds and peak RSS (MiB); raises on failure."""
    fd, report = tempfile.mkstemp(prefix="wfrun-bench-", suffix=".launch")
    os.close(fd)
    try:
        proc = subprocess.run(
            [sys.executable, "-c", _LAUNCHER, report, *args], cwd=cwd, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, env={**os.environ, **(env or {})},
        )
        if proc.returncode != 0:
            raise RuntimeError(f"{args} exited {proc.returncode}: {proc.stderr.decode()[-500:]}")
        elapsed, maxrss = Path(report).read_text().split()
    finally:
        os.unlink(report)
    return float(elapsed), int(maxrss) / 1024


def process_stats(
    args: list[str], cwd: Path, repeat: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Median seconds and max peak RSS (MiB) of a command run `repeat` times."""
    times, peaks = [], []
    for _ in range(repeat):
        elapsed, peak = launch(args, cwd, env)
        times.append(elapsed)
        peaks.append(peak)
    return statistics.median(times), max(peaks)


def settle() -> None:
    """Write the page cache out (`sync`): fixtures made without fsync, and the trees the
    benchmark copies or removes, must not be written back while the next figure is timed (that
    writeback would be charged to whatever fsyncs next)."""
    os.sync()


def durable_write_floor(tmp: Path, repeat: int) -> float:
    """One atomic durable write of a 2 KB file: temp, fsync, replace, directory fsync."""
    data = os.urandom(1024).hex().encode()  # 2 KB
    target = str(tmp / "floor.json")
    return median_time(lambda: _fsops.durable_write(target, data), repeat)


def recycled_write(tmp: Path, repeat: int) -> float:
    """wfrun's own snapshot write: the same protocol, reusing the inode of the version before
    last (`_fsops.durable_replace`) instead of creating a temporary file each time."""
    data = os.urandom(1024).hex().encode()
    target = str(tmp / "recycled.json")
    return median_time(lambda: _fsops.durable_replace(target, data), repeat)


def state_lock(tmp: Path, repeat: int) -> float:
    """One acquire and release of a run's state lock, as the file store takes it (filelock's
    descriptor lock, wfrun/store/_statelock.py)."""
    from wfrun.store._statelock import StateLock

    lock = StateLock(str(tmp / "run.lock"))

    def cycle() -> None:
        lock.acquire(timeout=30)
        lock.release()

    return median_time(cycle, repeat * 5)


def write_workflows(root: Path) -> Path:
    wf = root / "workflows"
    wf.mkdir(parents=True, exist_ok=True)
    steps = "\n".join(f"  - id: s{i}\n    handler: noop" for i in range(10))
    (wf / "ten.yaml").write_text(f"steps:\n{steps}\n")
    (wf / "ten.py").write_text("def noop(ctx):\n    return ctx.run.runs\n")
    (wf / "one.yaml").write_text("steps:\n  - id: only\n    handler: noop\n")
    (wf / "one.py").write_text("def noop(ctx):\n    return 1\n")
    (wf / "approve.yaml").write_text(
        textwrap.dedent("""\
        steps:
          - id: ask
            wait: true
            timeout: 30d
          - id: after
            handler: noop
        """)
    )
    (wf / "approve.py").write_text("def noop(ctx):\n    return 1\n")
    (wf / "poll.yaml").write_text("steps:\n  - id: poll\n")
    (wf / "poll.py").write_text(
        textwrap.dedent("""\
        def poll(ctx):
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s", None, 3)
            return ctx.run.runs
        """)
    )
    return wf


def per_step_overhead(root: Path, repeat: int) -> tuple[float, float, float]:
    """In-process time per step of a 10-step workflow of trivial steps (start to completion),
    and the durable-write floor, timed in alternation: each 10-step run is followed by two
    floor writes, so that a disk or CPU that slows down for a while slows both alike. Then the
    same runs again with fsync made a no-op: what a step costs besides waiting for the disk."""
    wf = write_workflows(root)
    engine = Engine(FileStore(root / "state-steps"), FakeClock("2026-01-01T00:00:00Z"), workflows_dir=str(wf))
    engine.start("ten")  # warm: module import, key creation
    data = os.urandom(1024).hex().encode()
    target = str(root / "floor.json")
    steps, floors = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        engine.start("ten")
        steps.append((time.perf_counter() - t0) / 10)
        for _ in range(2):
            t0 = time.perf_counter()
            _fsops.durable_write(target, data)
            floors.append(time.perf_counter() - t0)
    real_fsync = os.fsync
    os.fsync = lambda fd: None
    try:
        without_fsync = median_time(lambda: engine.start("ten"), repeat) / 10
    finally:
        os.fsync = real_fsync
    return statistics.median(steps), statistics.median(floors), without_fsync


def seed_idle_runs(root: Path, state: Path, count: int) -> None:
    """Create `count` runs suspended on a wait step with a 30-day deadline (idle for tick).

    Seeding skips fsync (a benchmark fixture, not a measurement) to keep setup fast."""
    wf = write_workflows(root)
    real_fsync = os.fsync
    os.fsync = lambda fd: None
    try:
        engine = Engine(FileStore(state), FakeClock("2026-01-01T00:00:00Z"), workflows_dir=str(wf))
        for i in range(count):
            engine.start("approve", run_id=f"idle{i:07d}")
    finally:
        os.fsync = real_fsync
    settle()


QUERY_START = "2026-01-01T00:00:00.000Z"


def seed_query_runs(root: Path, state: Path, count: int, suspended: int) -> None:
    """`count` runs of the `approve` workflow made over 100 days (as many each day), every
    (count / suspended)-th one waiting at its approval step, the others completed.

    Two real runs are made by the engine (one left waiting, one resumed to its end), then
    stored again under new ids and creation times through the store's own `create` (the
    snapshot writer, the due index and the run index, as a real run's first write), with
    fsync made a no-op (a fixture, not a measurement)."""
    from datetime import timedelta

    from wfrun.durations import parse_iso, to_iso
    from wfrun.ids import new_run_id
    from wfrun.model import Run

    wf = write_workflows(root)
    real_fsync = os.fsync
    os.fsync = lambda fd: None
    try:
        store = FileStore(state)
        engine = Engine(store, FakeClock(QUERY_START), workflows_dir=str(wf))
        waiting = engine.start("approve").run  # (the manifest cache is filled, as in use)
        done = engine.start("approve").run
        done = engine.resume(done.run_id, {}).run
        templates = {True: waiting.to_dict(), False: done.to_dict()}
        count, suspended = count - 2, suspended - 1  # the two are stored runs too
        start, step = parse_iso(QUERY_START), timedelta(days=100) / count
        every = max(count // max(suspended, 1), 1)
        for i in range(count):
            created = start + i * step
            data = dict(templates[suspended > 0 and i % every == every - 1
                                  and i // every < suspended])
            data["run_id"] = new_run_id(created)
            data["created_at"] = to_iso(created)
            data["updated_at"] = to_iso(created + timedelta(seconds=1))
            run = Run.from_dict(data)
            for state_ in run.steps.values():  # the steps' times, moved with the run
                for key in ("started_at", "finished_at"):
                    if getattr(state_, key):
                        setattr(state_, key, data["updated_at"])
                if state_.pause:
                    state_.pause = {**state_.pause, "since": data["updated_at"],
                                    "due_at": to_iso(created + timedelta(days=30))}
            store.create(run)
    finally:
        os.fsync = real_fsync
    settle()


def wfrun_cmd(root: Path, state: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "wfrun",
        "--state-dir",
        str(state),
        "--workflows-dir",
        str(root / "workflows"),
        *args,
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions, 10,000 idle runs")
    parser.add_argument("--idle", type=int, default=100_000, help="idle runs for the tick test")
    parser.add_argument("--queries", type=int, default=100_000,
                        help="stored runs for the list and pending test (1 in 100 suspended)")
    parser.add_argument("--out", default=None,
                        help="where the JSON goes (default bench/results.json; bench/results-pg.json "
                             "with --store)")
    parser.add_argument("--store", default=None, metavar="postgresql://USER@HOST:PORT/DB",
                        help="measure the PostgreSQL store on this server instead (bench/pg.py)")
    parser.add_argument("--json", action="store_true", help="with --store: print the JSON, not a table")
    parser.add_argument("--dbos-venv", default=None,
                        help="with --store: DBOS Transact's virtualenv (made if missing; default "
                             "bench/.work/dbos-venv)")
    opts = parser.parse_args()
    if opts.store is not None:
        if not opts.store.startswith(("postgresql://", "postgres://")):
            parser.error("--store takes a postgresql:// URL (the file store is measured without it)")
        import pg

        pg.main(opts.store, opts.quick, opts.out or str(REPO / "bench" / "results-pg.json"),
                opts.json, opts.dbos_venv)
        return
    if opts.json or opts.dbos_venv:
        parser.error("--json and --dbos-venv go with --store postgresql://...")
    opts.out = opts.out or str(REPO / "bench" / "results.json")
    reps = {"write": 200, "step": 200, "proc": 20, "due": 1000, "due_trials": 3}
    if opts.quick:
        reps = {"write": 50, "step": 30, "proc": 7, "due": 200, "due_trials": 1}
        opts.idle = min(opts.idle, 10_000)
        opts.queries = min(opts.queries, 10_000)
    # Measured on the repository's file system (where a project's .wfstate/ lives), not /tmp,
    # which may be another file system or crowded by other work; BENCH_DIR overrides it.
    base = Path(os.environ.get("BENCH_DIR") or REPO / "bench" / ".work")
    base.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix="wfrun-bench-", dir=base))
    # An installed wfrun has its bytecode (pip compiles it); an editable checkout under
    # PYTHONDONTWRITEBYTECODE=1 would compile every module from source on each cold command
    # (~80 ms), while the dependencies it is compared with load theirs. Compile it once.
    compileall.compile_dir(str(REPO / "wfrun"), quiet=1)
    results: dict[str, Any] = {
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
                    "wfrun_bytecode_precompiled": True},
        "import_deps_statement": DEPS,
    }
    try:
        results.update(_measure(tmp, reps, opts.idle, opts.queries))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    Path(opts.out).write_text(json.dumps(results, indent=2) + "\n")
    _print_table(results)
    print(f"\nwritten to {opts.out}")


def _measure(tmp: Path, reps: dict[str, int], idle: int, queries: int) -> dict[str, Any]:
    r: dict[str, Any] = {}
    floor = durable_write_floor(tmp, reps["write"])
    r["durable_write_ms"] = floor * 1000
    r["wfrun_snapshot_write_ms"] = recycled_write(tmp, reps["write"]) * 1000
    r["state_lock_cycle_ms"] = state_lock(tmp, reps["write"]) * 1000
    r["python_pass_ms"], r["python_pass_mib"] = _ms(
        process_stats([sys.executable, "-c", "pass"], tmp, reps["proc"])
    )
    r["import_deps_ms"], r["import_deps_mib"] = _ms(
        process_stats([sys.executable, "-c", DEPS], tmp, reps["proc"])
    )
    step, step_floor, step_cpu = per_step_overhead(tmp / "steps", reps["step"])
    r["durable_write_beside_steps_ms"] = step_floor * 1000  # the ratio's denominator
    r["per_step_ms"] = step * 1000
    r["per_step_without_fsync_ms"] = step_cpu * 1000  # for reading the figure: not a target
    r["per_step_in_durable_writes"] = step / step_floor

    proj = tmp / "proj"
    write_workflows(proj)
    state = proj / "state"
    r["cold_start_ms"], r["cold_start_mib"] = _ms(
        process_stats(wfrun_cmd(proj, state, "start", "one"), proj, reps["proc"])
    )
    # Each resume is timed right after a fresh import of the dependencies, so that both medians
    # see the same machine (on a shared host, load drifts within seconds).
    resume_times, resume_peaks, deps_times = [], [], []
    for i in range(reps["proc"]):
        subprocess.run(
            wfrun_cmd(proj, state, "start", "approve", "--run-id", f"r{i}"), check=True, capture_output=True
        )
        deps_times.append(launch([sys.executable, "-c", DEPS], tmp)[0])
        t, peak = process_stats(wfrun_cmd(proj, state, "resume", f"r{i}", "--data", "{}"), proj, 1)
        resume_times.append(t)
        resume_peaks.append(peak)
    r["cold_resume_ms"] = statistics.median(resume_times) * 1000
    r["cold_resume_mib"] = max(resume_peaks)
    r["import_deps_beside_resume_ms"] = statistics.median(deps_times) * 1000
    r["cold_resume_vs_import_deps"] = r["cold_resume_ms"] / r["import_deps_beside_resume_ms"]

    # The ticks over 0, 10,000 and `idle` runs are timed in rotation, like resume beside the
    # import: a difference of milliseconds is only seen if load drifts alike for all three.
    counts = sorted({0, min(10_000, idle), idle})
    ticks: dict[int, tuple[list[str], Path]] = {}
    for count in counts:
        idle_root = tmp / f"idle{count}"
        write_workflows(idle_root)
        idle_state = idle_root / "state"
        if count:
            seed_idle_runs(idle_root, idle_state, count)
        # --now: one minute after the seeding clock, so the idle runs' 30-day deadlines are
        # really in the future (with the wall clock they would all be long overdue).
        ticks[count] = (wfrun_cmd(idle_root, idle_state, "tick", "--now", "2026-01-01T00:01:00Z"),
                        idle_root)
    samples: dict[int, list[tuple[float, float]]] = {count: [] for count in counts}
    for _ in range(reps["proc"]):
        for count in counts:
            samples[count].append(launch(*ticks[count]))
    for count in counts:
        r[f"tick_idle_{count}_ms"] = statistics.median(t for t, _ in samples[count]) * 1000
        r[f"tick_idle_{count}_mib"] = max(m for _, m in samples[count])
        if count:
            shutil.rmtree(ticks[count][1], ignore_errors=True)
    settle()
    r["tick_idle_max_minus_none_ms"] = r[f"tick_idle_{idle}_ms"] - r["tick_idle_0_ms"]
    r.update(query_figures(tmp, reps, queries))

    due_root = tmp / "due"
    write_workflows(due_root)
    due_state = due_root / "state"
    engine = Engine(
        FileStore(due_state), FakeClock("2026-01-01T00:00:00Z"), workflows_dir=str(due_root / "workflows")
    )
    for i in range(reps["due"]):
        engine.start("poll", run_id=f"due{i:05d}")
    # Each trial ticks a fresh copy of the 1,000 due runs, one process and then the default
    # workers, each right after measuring the write floor it is compared with; ratios are the
    # median over the trials (a single tick of a few seconds is at the mercy of a busy host).
    serial: list[tuple[float, float]] = []
    parallel: list[tuple[float, float]] = []
    peaks: list[float] = []
    for trial in range(reps["due_trials"]):
        for workers, ratios in (("1", serial), ("default", parallel)):
            state = due_root / f"state-{workers}-{trial}"
            shutil.copytree(due_state, state)
            settle()
            args = wfrun_cmd(due_root, state, "tick", "--now", "2026-01-01T01:00:00Z",
                             *(["--workers", "1"] if workers == "1" else []))
            beside = durable_write_floor(tmp, reps["write"])  # the floor as the tick finds it
            elapsed, peak = launch(args, due_root)
            ratios.append((reps["due"] / elapsed, beside))
            peaks.append(peak)
            shutil.rmtree(state, ignore_errors=True)
            settle()
    r["due_reruns"] = reps["due"]
    r["due_trials"] = reps["due_trials"]
    r["due_reruns_one_process_per_s"] = statistics.median(rate for rate, _ in serial)
    r["due_one_process_vs_write_rate"] = statistics.median(rate * floor for rate, floor in serial)
    r["due_reruns_per_s"] = statistics.median(rate for rate, _ in parallel)
    r["durable_writes_per_s"] = statistics.median(1 / floor for _, floor in parallel)
    r["due_reruns_vs_write_rate"] = statistics.median(rate * floor for rate, floor in parallel)
    r["due_tick_mib"] = max(peaks)
    return r


QUERIES = {  # SPEC §9's added targets: each command over the stored runs, a cold process
    "list": ["list"],
    "list_suspended_json": ["list", "--status", "suspended", "--json"],
    "pending_json": ["pending", "--json"],
}


def query_figures(tmp: Path, reps: dict[str, int], count: int) -> dict[str, Any]:
    """`list` (its default page), `list --status suspended --json` and `pending --json` over
    `count` stored runs of which 1 in 100 is suspended, as cold processes: wall time and peak
    RSS. Timed in rotation with `list --json` over an empty state directory (what the
    command costs before it reads a run). The first run of each command after the runs were
    made is reported on its own: it fills the run index's caches (the entry counts of each day
    directory; the summaries of the runs a list showed, while their snapshots are unchanged)."""
    root = tmp / "queries"
    state = root / "state"
    seed_query_runs(root, state, count, count // 100)
    empty = root / "empty"
    empty.mkdir(mode=0o700)
    r: dict[str, Any] = {"query_runs": count, "query_suspended": count // 100}
    time.sleep(2.5)  # the index's last day directory settles (its counts may then be cached)
    commands = {name: wfrun_cmd(root, state, *args) for name, args in QUERIES.items()}
    for name, args in commands.items():  # the first of each fills the index's caches
        r[f"query_first_{name}_ms"] = launch(args, root)[0] * 1000
    commands["empty_list_json"] = wfrun_cmd(root, empty, "list", "--json")
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
    for _ in range(reps["proc"]):
        for name, args in commands.items():
            samples[name].append(launch(args, root))
    for name, got in samples.items():
        r[f"query_{name}_ms"] = statistics.median(t for t, _ in got) * 1000
        r[f"query_{name}_mib"] = max(m for _, m in got)
    shutil.rmtree(root, ignore_errors=True)
    settle()
    return r


def _ms(pair: tuple[float, float]) -> tuple[float, float]:
    return pair[0] * 1000, pair[1]


TARGETS: list[tuple[str, str, str, Callable[[float], bool]]] = [
    ("per_step_in_durable_writes", "per-step overhead in durable writes", "<= 1.5", lambda v: v <= 1.5),
    ("cold_resume_vs_import_deps", "cold resume / import of dependencies", "<= 0.75", lambda v: v <= 0.75),
    (
        "tick_idle_max_minus_none_ms",
        "tick over idle runs minus tick over none (ms)",
        "<= 10",
        lambda v: v <= 10,
    ),
    ("due_reruns_vs_write_rate", "due reruns per s / durable writes per s", ">= 0.60", lambda v: v >= 0.6),
    ("cold_resume_mib", "resume peak memory (MiB)", "<= 35", lambda v: v <= 35),
    ("due_tick_mib", "tick (1,000 due) peak memory (MiB)", "<= 35", lambda v: v <= 35),
    # added targets (SPEC §9): 100,000 stored runs, 1,000 of them suspended
    ("per_step_in_durable_writes", "per-step overhead in durable writes (added)", "<= 1.15",
     lambda v: v <= 1.15),
    *[(f"query_{name}_{unit}", f"{' '.join(args)}, stored runs ({unit})", f"<= {goal}",
       lambda v, goal=goal: v <= goal)
      for name, args in QUERIES.items() for unit, goal in (("ms", 300), ("mib", 35))],
]


def _print_table(r: dict[str, Any]) -> None:
    print(f"{'measure':<48} {'value':>12}")
    for key, value in r.items():
        if isinstance(value, str):
            print(f"{key:<48} {value}")
        elif key != "machine":
            print(f"{key:<48} {value:>12.3f}")
    print(f"\n{'target':<48} {'value':>10} {'goal':>8}  met")
    for key, label, goal, ok in TARGETS:
        value = r[key]
        print(f"{label:<48} {value:>10.3f} {goal:>8}  {'yes' if ok(value) else 'NO'}")


if __name__ == "__main__":
    main()
