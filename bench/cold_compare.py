"""Cold `wfrun resume` and `start` of several code versions, interleaved, against the import floor.

    python bench/cold_compare.py [--reps 25] [NAME=DIR ...]

Each NAME=DIR is a directory holding a `wfrun/` package (e.g. `git archive REV wfrun | tar -x
-C DIR`, then `python -m compileall -q DIR/wfrun`); with none, the checkout's own wfrun is
measured. Each repetition times, in rotating order, one `resume` of a fresh one-step
continuation and one `start` of a one-step workflow per version, next to one process importing
the dependencies, so that a machine busy with other work slows all of them alike; medians are
printed as ratios to the dependencies' import (SPEC §9). bench/run.py stays the reference.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import DEPS, write_workflows


def _time(args: list[str], env: dict[str, str], cwd: Path) -> float:
    start = time.perf_counter()
    subprocess.run(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd,
                   check=False)
    return (time.perf_counter() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=25)
    parser.add_argument("versions", nargs="*", help="NAME=DIR holding a wfrun/ package")
    opts = parser.parse_args()
    versions = dict(v.split("=", 1) for v in opts.versions) or {"checkout": ""}
    base = Path(os.environ.get("BENCH_DIR") or Path(__file__).resolve().parent / ".work")
    base.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="wfrun-cold-", dir=base))
    try:
        _compare(root, versions, opts.reps)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _compare(root: Path, versions: dict[str, str], reps: int) -> None:
    wf = write_workflows(root)
    # Processes run in `root`: `python -m` puts the working directory first on sys.path, which
    # from a checkout would shadow the PYTHONPATH of the versions.
    envs = {}
    for name, directory in versions.items():
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        env["PYTHONPATH"] = os.path.abspath(directory or Path(__file__).resolve().parent.parent)
        envs[name] = env

    def cmd(name: str, *args: str) -> list[str]:
        state = str(root / f"state-{list(versions).index(name)}")
        return [sys.executable, "-m", "wfrun", "--state-dir", state, "--workflows-dir", str(wf), *args]

    times: dict[str, list[float]] = {"deps": []}
    names = list(versions)
    for i in range(reps):
        for name in names:
            subprocess.run(cmd(name, "start", "approve", "--run-id", f"r{i}"), env=envs[name],
                           cwd=root, stdout=subprocess.DEVNULL, check=True)
        times["deps"].append(_time([sys.executable, "-c", DEPS], envs[names[0]], root))
        order = names[i % len(names):] + names[:i % len(names)]
        for name in order:
            times.setdefault(f"resume {name}", []).append(
                _time(cmd(name, "resume", f"r{i}", "--data", "{}"), envs[name], root))
        for name in order:
            times.setdefault(f"start {name}", []).append(
                _time(cmd(name, "start", "one"), envs[name], root))
    deps = statistics.median(times["deps"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:30s} {median:7.1f} ms  {median / deps:.3f} x deps")


if __name__ == "__main__":
    main()
