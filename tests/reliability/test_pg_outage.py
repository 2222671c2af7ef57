"""A database that, for a few seconds, refuses every connection (its connections terminated,
new ones refused: `ALLOW_CONNECTIONS false`) under a running `wfrun tick --watch` worker and a
`wfrun serve` server. Meanwhile both keep running and say what is wrong in one sentence per
line (no traceback); a start over HTTP gets a 5xx with a one-sentence error within seconds. Once the database
takes connections again, both go on without a restart: a run that became due during the outage
is advanced, and a new run started over HTTP completes."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import _pg
import psycopg
import pytest

from ._pgfigures import Figures, show_figures
from ._pgfleet import Fleet, database
from ._pgload import Load, Watch, post

OUTAGE = 4.0  # seconds the database refuses connections


def _wait_completed(watch: Watch, run_ids: list[str], timeout: float) -> None:
    """Return once every run is completed (fail the test after `timeout` seconds)."""
    began = time.monotonic()
    rows: list[Any] = []
    while time.monotonic() - began < timeout:
        rows = watch.conn.execute("SELECT run_id, status FROM wfrun_runs WHERE run_id = ANY(%s)",
                                  [run_ids]).fetchall()
        if len(rows) == len(run_ids) and all(status == "completed" for _, status in rows):
            return
        time.sleep(0.1)
    pytest.fail(f"runs {run_ids} did not complete within {timeout}s: {rows}")


@pytest.mark.slow
def test_a_worker_and_a_server_outlive_a_database_that_refuses_connections(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], record_property: Any
) -> None:
    figures = Figures(f"PostgreSQL: the database refuses connections for {OUTAGE:.0f}s under a "
                      "worker and a server", [])
    with database() as url:
        name = urlsplit(url).path.lstrip("/")
        fleet = Fleet(tmp_path, url, lease="2s")
        load: Load | None = None
        admin = psycopg.connect(_pg.server_url(), autocommit=True)  # (another database)
        try:
            fleet.cli("list")
            server, base = fleet.server()
            worker = fleet.worker()
            load = Load(fleet, [base], seed=0)
            token = load.tokens(["nap"])["nap"]
            load.start("nap", token, "before")  # its 1s sleep ends during the outage
            [before] = list(load.runs)
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS false')
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = %s", [name])
            refused_at = time.monotonic()
            time.sleep(OUTAGE / 2)
            asked = time.monotonic()
            during = post(f"{base}/workflows/nap/runs", {}, {"Authorization": f"Bearer {token}",
                                                              "Idempotency-Key": "during"})
            answered_in = time.monotonic() - asked
            while time.monotonic() - refused_at < OUTAGE:
                time.sleep(0.1)
            up = {"worker": worker.alive(), "server": server.alive()}
            said = fleet.complaints()
            admin.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            back_at = time.monotonic()
            outage = back_at - refused_at
            load.start("nap", token, "after")
            watch = Watch(url)
            try:
                _wait_completed(watch, sorted(load.runs), timeout=30)
            finally:
                watch.close()
            recovered_in = time.monotonic() - back_at
            codes = fleet.shutdown()
        finally:
            with psycopg.connect(_pg.server_url(), autocommit=True) as again:
                again.execute(f'ALTER DATABASE "{name}" WITH ALLOW_CONNECTIONS true')
            admin.close()
            if load is not None:
                load.close()
            fleet.abandon()
    figures.add("lines the worker and the server printed during the outage", len(said))
    for line in dict.fromkeys(s[:200] for s in said):
        figures.add("  e.g.", line)
    figures.add("the outage lasted (s)", f"{outage:.1f}")
    figures.add("a start over HTTP during the outage, answered after (s)",
                f"{answered_in:.1f}: {during[0]} {during[1].strip()[:200]}")
    figures.add("outage ended -> both runs completed (s)", f"{recovered_in:.1f}")
    show_figures(figures, capsys, record_property)
    assert up == {"worker": True, "server": True}, {p.name: p.stderr()[-2000:] for p in fleet.procs}
    assert said, "neither the worker nor the server said that the database refused them"
    assert not fleet.bad_output(), fleet.bad_output()
    assert 500 <= during[0] < 600, during
    # not after the pool's 30 s wait: a server out of reach is found out by trying it once
    assert answered_in < 15, answered_in
    assert "\n" not in json.loads(during[1])["error"].strip(), during
    assert before in load.runs and len(load.runs) == 2, load.runs
    assert all(code == 0 for code in codes.values()), codes
    assert not load.errors, load.errors
