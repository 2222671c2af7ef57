"""A tick's claims on PostgreSQL (SPEC §10): the runs come with the claims that acquired them, and
each run's claim ends with its last save. Nothing is left behind (no claim row, no advisory lock
of the tick's session once it acquires again or renews), and a run changed between its claim
and its firing (a cancel, which takes the state lock and not the claim) is seen as it is."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _pg
import _stores
import pytest

from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.postgres import PostgresStore

POLL_PY = """\
def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("10s", None, 3)
    return ctx.run.runs
"""
START = "2026-01-01T00:00:00Z"


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        yield schema_url


def project(tmp_path: Path) -> str:
    """A workflows directory with `poll`: a step that reruns once, 10 s later."""
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "poll.yaml").write_text("steps:\n  - id: poll\n    handler: poll\n")
    (tmp_path / "workflows" / "poll.py").write_text(POLL_PY)
    return str(tmp_path / "workflows")


def named(url: str) -> tuple[str, str]:
    """`url` with an application name of its own (connections of their own, and a name to find
    them by in pg_stat_activity), and that name."""
    name = f"wfrun_ticks_{secrets.token_hex(4)}"
    return f"{url}&application_name={name}", name


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def advisory_locks(url: str, name: str) -> int:
    """The session advisory locks the connections named `name` hold (a claim's liveness)."""
    return int(sql(url, "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
                        "WHERE a.application_name = %s AND l.locktype = 'advisory' "
                        "AND l.objsubid = 1", name)[0][0])


def test_a_tick_of_several_batches_leaves_no_claim_and_no_lock_behind(
    url: str, tmp_path: Path
) -> None:
    mine, name = named(url)
    clock = FakeClock(START)
    engine = Engine(PostgresStore(mine), clock, workflows_dir=project(tmp_path))
    started = [engine.start("poll", run_id=f"r{i:02d}").run for i in range(70)]  # > 2 batches
    assert {run.status for run in started} == {"waiting"}
    clock.advance("1m")
    report = engine.tick()
    assert not report.errors
    assert sorted(a["run_id"] for a in report.advanced) == [f"r{i:02d}" for i in range(70)]
    assert {(a["reason"], a["status"]) for a in report.advanced} == {("rerun", "completed")}
    # the process is still connected: whatever it still held would show
    assert sql(url, "SELECT count(*) FROM wfrun_claims") == [(0,)]
    assert advisory_locks(url, name) == 0
    history = [e["type"] for e in engine.store.read_history("r42")]
    assert history.count("step_started") == 2 and "recovered" not in history
    assert not engine.store.is_claimed("r42") and engine.store.claim("r42") is not None
    engine.store.close()


def test_the_lock_of_a_claim_ended_by_a_save_goes_with_the_next_renewal(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A process that executes one run and then waits (a server) does not keep its lock."""
    monkeypatch.setenv("WFRUN_LEASE", "300ms")  # renewals every 100 ms
    mine, name = named(url)
    engine = Engine(PostgresStore(mine), FakeClock(START), workflows_dir=project(tmp_path))
    assert engine.start("poll", run_id="r1").run.status == "waiting"
    assert sql(url, "SELECT count(*) FROM wfrun_claims") == [(0,)]  # ended with the save
    assert _stores.wait_until(lambda: advisory_locks(url, name) == 0, 10)
    engine.store.close()


class CancelAfterAcquiring(PostgresStore):
    """A tick's store whose first acquired batch is followed at once by another process's
    cancel of `victim`: the run the claim carries is then stale."""

    victim = "r1"
    other: Engine

    def acquire_due(self, now: str, limit: int | None = None) -> list[Any]:
        claims = super().acquire_due(now, limit)
        if any(claim.run_id == self.victim for claim in claims):
            self.other.cancel(self.victim, "meanwhile")
        return claims


def test_a_run_cancelled_after_its_claim_was_acquired_is_not_executed(
    url: str, tmp_path: Path
) -> None:
    workflows = project(tmp_path)
    clock = FakeClock(START)
    other = Engine(PostgresStore(named(url)[0]), clock, workflows_dir=workflows)
    for run_id in ("r0", "r1", "r2"):
        assert other.start("poll", run_id=run_id).run.status == "waiting"
    store = CancelAfterAcquiring(named(url)[0])
    store.other = other
    engine = Engine(store, clock, workflows_dir=workflows)
    clock.advance("1m")
    report = engine.tick()
    assert not report.errors
    assert sorted(a["run_id"] for a in report.advanced) == ["r0", "r2"]
    cancelled = other.store.load("r1")
    assert cancelled.status == "cancelled" and cancelled.steps["poll"].runs == 1
    history = [e["type"] for e in other.store.read_history("r1")]
    assert history.count("step_started") == 1 and history[-1] == "cancelled"
    assert sql(url, "SELECT count(*) FROM wfrun_claims") == [(0,)]
    for done in (store, other.store):
        done.close()
