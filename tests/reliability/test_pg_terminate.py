"""Every backend connection of the database terminated (`pg_terminate_backend`), twice, while
two `wfrun tick --watch` workers and two `wfrun serve` servers carry a load of runs started
over HTTP and resumed over HTTP and with `wfrun resume`.

The database is the test's own, so the statement terminates exactly the connections of its
processes (the workers', the servers' and those of `wfrun resume` commands running then). The
clients are patient: a request that got no clear answer (a 5xx, exit 5) is sent again with the
same data, as a service would. Then: every process is still running and stops cleanly; every
run completed right; every acknowledged resume applied exactly once; no step attempt executed
twice; no history event doubled; every error a process printed, and every unclear answer a
client got, is one sentence without a traceback. The figures are printed.
"""

from __future__ import annotations

import json
import os
import random
import re
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from wfrun.store.postgres import PostgresStore

from ._pgdrive import drive, plan
from ._pgfigures import Figures, show_figures
from ._pgfleet import Fleet, database, exclusive
from ._pgload import Load, Watch
from ._pgverify import check_attempts, check_runs, read_back, unfinished

RUNS = 300
MIX = {"ask": 0.35, "poll": 0.15, "nap": 0.15, "flaky": 0.15, "pipeline": 0.20}
TERMINATE_AT = (2.0, 7.0)  # seconds after the first start request
DEADLINE = 90.0
LEASE_SECONDS = 2.0
# seconds after a termination a process may still be on a connection of its lost session, and
# begin a step attempt there (a fresh clone's CI run on this 2-core host once had a recovered
# attempt begun more than 5 s after the last termination; its cause was not traced further)
LATE = 10.0
TERMINATE = ("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
             "WHERE datname = current_database() AND pid <> pg_backend_pid()")


class Terminator:
    """Terminates every other backend of the database at the given moments."""

    def __init__(self, moments: tuple[float, ...]) -> None:
        self.began = time.monotonic()
        self.moments = list(moments)
        self.done: list[tuple[float, int]] = []  # (seconds after the start, backends ended)
        self.wall: list[float] = []  # when each was done (time.time())

    def __call__(self, watch: Watch) -> None:
        elapsed = time.monotonic() - self.began
        if self.moments and elapsed >= self.moments[0]:
            self.moments.pop(0)
            self.wall.append(time.time())
            ended = watch.conn.execute(TERMINATE).fetchone()[0]
            self.done.append((elapsed, int(ended)))


def _one_sentence(text: str) -> bool:
    """An unclear answer's text is one sentence: a JSON error or one `error:` line."""
    body = text.split(": ", 2)[-1].strip()
    if body.startswith("{"):
        try:
            body = str(json.loads(body).get("error", ""))
        except ValueError:
            return False
    return "Traceback" not in text and "\n" not in body and bool(re.search(r"\w", body))


@pytest.mark.slow
def test_every_connection_terminated_twice_mid_load_loses_nothing_and_doubles_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    seed = int(os.environ.get("WFRUN_TEST_SEED") or random.randrange(1 << 30))
    rng = random.Random(seed)
    figures = Figures(f"PostgreSQL: every connection terminated twice, {RUNS} runs, 2 workers "
                      f"+ 2 servers (seed {seed})", [])
    with exclusive(), database() as url:
        fleet = Fleet(tmp_path, url, lease=f"{LEASE_SECONDS:g}s", step_sleep=0.1)
        load: Load | None = None
        try:
            fleet.cli("list")  # the schema, made once before the processes start at once
            servers = [fleet.server() for _ in range(2)]
            for _ in range(2):
                fleet.worker()
            load = Load(fleet, [base for _, base in servers], seed, patient=True)
            tokens = load.tokens(list(MIX))
            terminator = Terminator(TERMINATE_AT)
            starter = threading.Thread(target=load.start_all,
                                       args=(plan(MIX, RUNS, rng), tokens))
            starter.start()
            counts = drive(fleet, load, RUNS, DEADLINE, rng, terminator)
            starter.join()
            finished = time.monotonic() - terminator.began
            alive = {p.name: p.alive() for p in fleet.procs}
            codes = fleet.shutdown()
        finally:
            if load is not None:
                load.close()
            fleet.abandon()
        assert all(alive.values()), {n: fleet.logs.joinpath(f"{n}.err").read_text()[-3000:]
                                     for n, up in alive.items() if not up}
        assert not load.errors, load.errors[:20]
        assert [n for _, n in terminator.done] and len(terminator.done) == 2, terminator.done
        store = PostgresStore(url)
        if counts.get("completed") != RUNS:
            pytest.fail(f"not every run finished within {DEADLINE:.0f}s: {counts}:\n" + "\n".join(
                unfinished(store, load.runs, load.answers, fleet.attempts())[:10]), pytrace=False)
        runs, histories = read_back(store, sorted(load.runs))
        store.close()
    problems, tally = check_runs(load.runs, runs, histories, load.answers)
    moments = list(terminator.wall)
    cuts = {proc.pgid: moments for proc in fleet.procs}
    cuts[os.getpgid(0)] = moments  # (the `wfrun resume` commands this test forked)
    stalled = frozenset(p.pgid for p in fleet.procs if "lost its lease" in p.stderr())
    attempt_problems, attempt_figures = check_attempts(fleet.attempts(), load.runs, runs,
                                                       histories, cuts, "terminated connection",
                                                       window=LATE, stalled=stalled,
                                                       lease=LEASE_SECONDS)
    printed = fleet.complaints()
    figures.add("backends terminated (at s after the first start)",
                ", ".join(f"{n} (at {at:.1f})" for at, n in terminator.done))
    figures.add("all runs finished after (s)", f"{finished:.1f}")
    for name, count in sorted(tally.items()):
        figures.add(name, count)
    for name, value in attempt_figures.items():
        figures.add(name, value)
    figures.add("unclear answers to clients, sent again", load.retries)
    for text, n in Counter(re.sub(r"\b[0-9a-z]{26}\b|http-[0-9a-f]{40}", "RUN", u)
                           .strip()[:160] for u in load.unclear).most_common(3):
        figures.add(f"  {n} x", text)
    figures.add("lines workers and servers printed on stderr (errors)", len(printed))
    for text, n in Counter(re.sub(r"\b[0-9a-z]{26}\b|http-[0-9a-f]{40}", "RUN", line)[:160]
                           for line in printed).most_common(3):
        figures.add(f"  {n} x", text)
    show_figures(figures, capsys, record_property)
    assert not problems, problems[:20]
    assert not attempt_problems, attempt_problems[:20]
    assert all(code == 0 for code in codes.values()), codes
    assert not fleet.bad_output(), fleet.bad_output()
    assert all(_one_sentence(text) for text in load.unclear), [
        t for t in load.unclear if not _one_sentence(t)][:5]
