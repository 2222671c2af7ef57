"""In-process per-step cost of several code versions, alternated, with and without fsync.

    python bench/step_compare.py [--trials 8] [--runs 150] NAME=DIR [NAME=DIR ...]

Each NAME=DIR is a directory holding a `wfrun/` package (e.g. `git archive REV wfrun | tar -x
-C DIR`). Each trial runs, for every version in turn and in a process of its own, `--runs`
10-step workflows of trivial steps with real fsyncs and then as many with fsync made a no-op
(what a step costs besides waiting for the disk); medians over the trials are printed. Taking
the versions in alternation, in an order that rotates, makes a host that slows down for a
while slow all of them alike.
bench/run.py stays the reference for the targets.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent

_TRIAL = r"""
import os, shutil, sys, tempfile, time
from pathlib import Path
sys.path.insert(0, sys.argv[1]); sys.path.insert(1, sys.argv[2])
import wfrun
assert wfrun.__file__.startswith(sys.argv[1]), wfrun.__file__
from run import write_workflows
from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.file import FileStore
runs = int(sys.argv[3])
root = Path(tempfile.mkdtemp(dir=sys.argv[4]))
try:
    engine = Engine(FileStore(root / "state"), FakeClock("2026-01-01T00:00:00Z"),
                    workflows_dir=str(write_workflows(root)))
    for _ in range(20):
        engine.start("ten")
    t0 = time.perf_counter()
    for _ in range(runs):
        engine.start("ten")
    real = (time.perf_counter() - t0) / runs / 10
    os.fsync = lambda fd: None
    t0 = time.perf_counter()
    for _ in range(runs):
        engine.start("ten")
    print(real * 1000, (time.perf_counter() - t0) / runs / 10 * 1000)
finally:
    shutil.rmtree(root, ignore_errors=True)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--runs", type=int, default=150)
    parser.add_argument("versions", nargs="+", help="NAME=DIR holding a wfrun/ package")
    opts = parser.parse_args()
    versions = dict(v.split("=", 1) for v in opts.versions)
    work = Path(os.environ.get("BENCH_DIR") or BENCH / ".work")
    work.mkdir(parents=True, exist_ok=True)
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in versions}
    names = list(versions)
    for trial in range(opts.trials):
        # rotate who goes first: a process right after another one finds the disk busier
        for name in names[trial % len(names):] + names[:trial % len(names)]:
            directory = versions[name]
            out = subprocess.run(
                [sys.executable, "-c", _TRIAL, os.path.abspath(directory), str(BENCH),
                 str(opts.runs), str(work)], capture_output=True, text=True, check=True).stdout
            real, without_fsync = map(float, out.split())
            results[name].append((real, without_fsync))
    for name, samples in results.items():
        print(f"{name:20s} per step {statistics.median(r for r, _ in samples):.3f} ms, "
              f"without fsync {statistics.median(c for _, c in samples):.3f} ms")


if __name__ == "__main__":
    main()
