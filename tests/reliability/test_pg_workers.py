"""Three `wfrun tick --watch` workers and two `wfrun serve` servers over one PostgreSQL
database, 1,000 runs (suspensions, reruns, sleeps, retries) started over HTTP and resumed over
HTTP and with `wfrun resume`, while a random worker is SIGKILLed every few seconds (with the
children it forked) and another started in its place.

Then: every run completed with the right outputs; every acknowledged resume (HTTP 202, exit 0)
applied exactly once, and every race of two resumes acknowledged exactly one; no step attempt
executed twice, except by a worker killed while executing it (the steps log each attempt to a
side file, with their process group); no history event doubled; no worker or server printed a
traceback. The figures (counts, kills, the time from a kill to the cut step's next attempt)
are printed.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import _pg
import pytest

from wfrun.store.postgres import PostgresStore

from ._pgdrive import drive, plan
from ._pgfigures import Figures, show_figures
from ._pgfleet import Fleet, Proc, exclusive
from ._pgload import Load
from ._pgverify import check_attempts, check_runs, read_back, unfinished

RUNS = 1000
MIX = {"ask": 0.35, "poll": 0.15, "nap": 0.15, "flaky": 0.15, "pipeline": 0.20}
LEASE_SECONDS = 2.0
LEASE = f"{LEASE_SECONDS:g}s"
KILL_EVERY = (2.0, 4.0)  # seconds between two kills, drawn uniformly
DEADLINE = 110.0  # seconds for the whole load to finish


class Killer(threading.Thread):
    """SIGKILLs a random worker (and its forked children) every few seconds and starts another
    in its place, so that three are running again."""

    def __init__(self, fleet: Fleet, workers: list[Proc], rng: random.Random) -> None:
        super().__init__(name="killer", daemon=True)
        self.fleet, self.workers, self.rng = fleet, workers, rng
        self.halt = threading.Event()
        self.killed: dict[int, float] = {}  # process group -> when it was killed
        self.died: list[Proc] = []  # workers found exited before their kill

    def run(self) -> None:
        while not self.halt.wait(self.rng.uniform(*KILL_EVERY)):
            victim = self.rng.choice(self.workers)
            if not victim.alive():  # it exited by itself: the test fails on its exit code
                self.died.append(victim)
            else:
                self.killed[victim.pgid] = victim.kill()
            self.workers.remove(victim)
            self.workers.append(self.fleet.worker())


@pytest.mark.slow
def test_workers_killed_at_random_lose_nothing_and_apply_every_resume_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    seed = int(os.environ.get("WFRUN_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    figures = Figures("PostgreSQL: 3 workers (kill -9 loop) + 2 servers, "
                      f"{RUNS} runs (seed {seed})", [])
    with exclusive(), _pg.schema() as url:
        fleet = Fleet(tmp_path, url, lease=LEASE, step_sleep=0.15)
        load: Load | None = None
        killer: Killer | None = None
        try:
            fleet.cli("list")  # the schema, made once before the processes start at once
            servers = [fleet.server() for _ in range(2)]
            workers = [fleet.worker() for _ in range(3)]
            load = Load(fleet, [base for _, base in servers], seed)
            tokens = load.tokens(list(MIX))
            killer = Killer(fleet, workers, random.Random(seed + 1))
            killer.start()
            began = time.monotonic()
            starter = threading.Thread(target=load.start_all, args=(plan(MIX, RUNS, rng), tokens))
            starter.start()  # the runs are resumed, and workers killed, while others start
            counts = drive(fleet, load, RUNS, DEADLINE, rng)
            starter.join()
            killer.halt.set()
            killer.join()
            finished = time.monotonic() - began
            codes = fleet.shutdown()
        finally:
            if killer is not None:
                killer.halt.set()
                killer.join()
            if load is not None:
                load.close()
            fleet.abandon()
        assert not killer.died, [(p.name, p.popen.returncode, p.stderr()[-2000:])
                                 for p in killer.died]
        assert not load.errors, load.errors[:20]
        store = PostgresStore(url)
        if counts.get("completed") != RUNS:
            pytest.fail(f"not every run finished within {DEADLINE:.0f}s: {counts}:\n" + "\n".join(
                unfinished(store, load.runs, load.answers, fleet.attempts())[:10]), pytrace=False)
        runs, histories = read_back(store, sorted(load.runs))
        store.close()
    problems, tally = check_runs(load.runs, runs, histories, load.answers)
    stalled = frozenset(p.pgid for p in fleet.procs if "lost its lease" in p.stderr())
    attempt_problems, attempt_figures = check_attempts(fleet.attempts(), load.runs, runs,
                                                       histories, {g: [t] for g, t in
                                                                   killer.killed.items()},
                                                       stalled=stalled, lease=LEASE_SECONDS)
    recovered = Counter(bool(e.get("step")) for h in histories.values() for e in h
                        if e["type"] == "recovered")
    figures.add("all runs finished after (s)", f"{finished:.1f}")
    for name, count in sorted(tally.items()):
        figures.add(name, count)
    figures.add("workers killed (kill -9 of the group) / started", f"{len(killer.killed)} / "
                f"{sum(p.name.startswith('worker') for p in fleet.procs)}")
    figures.add("'recovered' events: of a step / between steps",
                f"{recovered[True]} / {recovered[False]}")
    for name, value in attempt_figures.items():
        figures.add(name, value)
    show_figures(figures, capsys, record_property)
    assert not problems, problems[:20]
    assert not attempt_problems, attempt_problems[:20]
    assert all(code == 0 for code in codes.values()), codes
    assert not fleet.bad_output(), fleet.bad_output()
    assert killer.killed, "no worker was killed"
