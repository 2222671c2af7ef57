"""A `wfrun tick --watch` worker paused with SIGSTOP while it executes a step, for longer than
its lease; another worker recovers the run (a greater fencing token) and completes it; then the
paused worker is continued with SIGCONT, finishes the step and tries to commit it.

Its late commit is refused by the fencing token: the run's state, history and logs are exactly as
the other worker left them (the step completed once, by the other worker; nothing after it
executed twice); the paused worker says in one sentence that it lost its lease, and goes on
working. The figures (how long it was paused, how long the recovery took, the two tokens) are
printed.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import _pg
import psycopg
import pytest

from wfrun.durations import parse_iso
from wfrun.store.postgres import PostgresStore

from ._pgfigures import Figures, show_figures
from ._pgfleet import Fleet

LEASE = 2.0  # seconds
STEP = 1.5  # seconds the paused worker's step sleeps (it is stopped in between)


def _until(what: str, check: Any, timeout: float) -> Any:
    """Poll `check()` until it returns something true; fail the test after `timeout` seconds."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    pytest.fail(f"{what} did not happen within {timeout}s")


@pytest.mark.slow
def test_a_worker_paused_past_its_lease_cannot_commit_after_another_recovered_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    figures = Figures(f"PostgreSQL: a worker SIGSTOPped mid-step past its {LEASE:g}s lease", [])
    with _pg.schema() as url:
        fleet = Fleet(tmp_path, url, lease=f"{LEASE:g}s", step_sleep=STEP)
        db = psycopg.connect(url, autocommit=True)
        try:
            started = fleet.cli("start", "poll", "--json")  # attempt 1 here; a rerun in 1s
            assert started.returncode == 0, started.stderr
            run_id = started.stdout.split('"run_id": "')[1].split('"')[0]
            paused = fleet.worker()
            attempt = _until("the worker beginning the rerun", lambda: [
                a for a in fleet.attempts() if a.pgid == paused.pgid and a.step == "poll"], 30)[0]
            paused.signal(signal.SIGSTOP)
            stopped_at = time.time()
            first = db.execute("SELECT token, owner FROM wfrun_claims WHERE run_id = %s",
                               [run_id]).fetchone()
            fleet.step_sleep = 0.0
            other = fleet.worker()
            _until("the other worker completing the run", lambda: db.execute(
                "SELECT status = 'completed' FROM wfrun_runs WHERE run_id = %s",
                [run_id]).fetchone()[0], 60)
            store = PostgresStore(url)
            before = (store.load(run_id).to_dict(), store.read_history(run_id),
                      store.read_logs(run_id)[0])
            second = min(e["at"] for e in before[1] if e["type"] == "recovered")
            paused.signal(signal.SIGCONT)
            continued_at = time.time()
            said = _until("the paused worker saying it lost the run", lambda: [
                line for line in paused.stderr().splitlines() if "lost its lease" in line], 30)
            after = (store.load(run_id).to_dict(), store.read_history(run_id),
                     store.read_logs(run_id)[0])
            store.close()
            alive = paused.alive()
            codes = fleet.shutdown()
        finally:
            db.close()
            fleet.abandon()
    steps = after[0]["steps"]
    history = after[1]
    attempts = fleet.attempts()
    figures.add("paused for (s)", f"{continued_at - stopped_at:.2f}")
    figures.add("pause -> run recovered by the other worker (s)",
                f"{parse_iso(second).timestamp() - stopped_at:.2f}")
    figures.add("fencing token of the paused worker's lease", first[0] if first else None)
    figures.add("what the paused worker said", said[0])
    show_figures(figures, capsys, record_property)
    assert first is not None and f"pid {paused.popen.pid}" in first[1], first
    # the lease, renewed every third of its length until the pause, held the run that long
    assert parse_iso(second).timestamp() - stopped_at >= LEASE * 2 / 3 - 0.1, second
    assert after == before, "the paused worker's late commit changed the run (or its logs)"
    assert [r["text"] for r in after[2] if "poll attempt" in r.get("text", "")] == [
        "poll attempt 1 done", "poll attempt 3 done"], after[2]
    assert after[0]["status"] == "completed"
    # attempt 2 (the paused one) was recovered and executed again as attempt 3, by the other
    assert attempt.runs == 2 and steps["poll"]["runs"] == 3, steps["poll"]
    assert [(e["type"], e.get("runs")) for e in history
            if e.get("step") == "poll" and e["type"] != "log"] == [
        ("step_started", 1), ("rerun_scheduled", None), ("timer_fired", None),
        ("step_started", 2), ("recovered", 2), ("step_started", 3),
        ("step_completed", 3)], history
    assert [e["type"] for e in history].count("completed") == 1
    ledger = [(a.step, a.runs, a.pgid) for a in attempts]
    assert ledger == [("poll", 1, ledger[0][2]), ("poll", 2, paused.pgid),
                      ("poll", 3, other.pgid), ("after", 1, other.pgid)], ledger
    assert len(said) == 1 and said[0].startswith(f"error: run {run_id} was taken over "), said
    assert "Traceback" not in paused.stderr() and not fleet.bad_output(), fleet.bad_output()
    assert alive, paused.stderr()
    assert codes == {paused.name: 0, other.name: 0}, codes
