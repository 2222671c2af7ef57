"""`wfrun tick` firing 1,000 due reruns with different `--workers` counts, against the write floor.

    python bench/workers_compare.py [--trials 6] [--runs 1000] 2 4 ...

Each trial copies one seeded state directory once per worker count and times a whole `wfrun
tick --workers N` process on it, each right after measuring the durable-write floor it is
compared with; the counts are timed in rotating order, so that a machine busy with other work
slows all of them alike. Prints, per count, the median reruns per second and the median ratio
to the floor's write rate (SPEC §9's due-rerun target). bench/run.py stays the reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import durable_write_floor, launch, wfrun_cmd, write_workflows

from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.file import FileStore

DUE_AT = "2026-01-01T01:00:00Z"  # an hour after the seeding clock: every rerun is due


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=6)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("workers", nargs="+", help="worker counts to compare")
    opts = parser.parse_args()
    base = Path(os.environ.get("BENCH_DIR") or Path(__file__).resolve().parent / ".work")
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="wfrun-workers-", dir=base))
    try:
        _compare(root, opts.workers, opts.trials, opts.runs)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _compare(root: Path, counts: list[str], trials: int, runs: int) -> None:
    wf = write_workflows(root)
    seeded = root / "seeded"
    engine = Engine(FileStore(seeded), FakeClock("2026-01-01T00:00:00Z"), workflows_dir=str(wf))
    for i in range(runs):
        engine.start("poll", run_id=f"due{i:05d}")  # runs once, then waits for a 1 s rerun
    rates: dict[str, list[tuple[float, float]]] = {count: [] for count in counts}
    for trial in range(trials):
        order = counts[trial % len(counts):] + counts[:trial % len(counts)]
        for count in order:
            state = root / f"state-{count}-{trial}"
            shutil.copytree(seeded, state)
            floor = durable_write_floor(root, 100)
            elapsed, _ = launch(wfrun_cmd(root, state, "tick", "--now", DUE_AT, "--workers", count),
                                root)
            rates[count].append((runs / elapsed, runs / elapsed * floor))
            shutil.rmtree(state)
    for count, values in rates.items():
        per_s = statistics.median(rate for rate, _ in values)
        ratio = statistics.median(ratio for _, ratio in values)
        print(f"--workers {count:>3}: {per_s:6.0f} reruns/s  {ratio:.3f} x the write rate")


if __name__ == "__main__":
    main()
