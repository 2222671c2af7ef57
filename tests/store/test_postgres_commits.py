"""One transaction per state change on PostgreSQL (SPEC §10), counted by the server itself.

`pg_stat_database.xact_commit` of a database of the test's own counts every transaction the
commands commit there (read-only ones too). Each figure is the slope between two runs of
different lengths (or two ticks firing different numbers of due runs), so that what a command
costs once (connecting, the schema check, the claim) cancels: what is left is what one more
step (or fired run) costs. A crash between a step's new state and its history events cannot
be observed: the client is killed while its save waits on a lock, and state and history agree
before and after recovery.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest

STEP_PY = "def step(ctx):\n    return ctx.run.runs\n"
POLL_PY = """\
def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("10s", None, 3)
    return ctx.run.runs


def step(ctx):
    return ctx.run.runs
"""
GATE_PY = """\
import pathlib
import time


def first(ctx):
    pathlib.Path("ready").touch()
    while not pathlib.Path("go").exists():
        time.sleep(0.01)
    return "first"


def second(ctx):
    return "second"
"""
# A one-step run whose rerun a tick fires: done after it (`once`), or waiting again (`again`,
# an hour later: not due at the next measurement's tick)
RERUN_PY = {
    "once": """\
def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("10s", None, 3)
    return ctx.run.runs
""",
    "again": """\
def poll(ctx):
    ctx.flow.rerun("10s" if ctx.run.runs == 1 else "1h", None, 1000)
""",
}
MAX_PER_STEP = 1.2  # SPEC §10: transactions per step
MAX_PER_FIRED_RUN = 2.2  # the "started" state and the outcome (the claims' acquire amortised)


class Database:
    """A database of the test's own on the test server (so that nothing else commits there),
    and a project whose runs are kept in it."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = root, name
        self.url = urlunsplit(urlsplit(_pg.server_url())._replace(path=f"/{name}"))
        (root / "workflows").mkdir()

    def workflow(self, name: str, steps: list[str], module: str, first: str = "") -> None:
        lines = [first] if first else []
        lines += [f"  - id: {sid}\n    handler: step" for sid in steps]
        (self.root / "workflows" / f"{name}.yaml").write_text("steps:\n" + "\n".join(lines) + "\n")
        (self.root / "workflows" / f"{name}.py").write_text(module)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "wfrun", "--store", self.url, *args]

    def env(self) -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}

    def cli(self, *args: str) -> Any:
        """`wfrun --store URL ARGS --json` as a process of its own; its JSON answer."""
        proc = subprocess.run(self.argv(*args, "--json"), capture_output=True, text=True,
                              timeout=120, cwd=self.root, env=self.env())
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
        return json.loads(proc.stdout)

    def sql(self, query: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            cur = conn.execute(query, params or None)
            return cur.fetchall() if cur.description else []

    def commits(self) -> int:
        """The database's committed transactions so far, once every session of it has ended
        (a session's counts reach the statistics when it ends): read from another database,
        so that reading adds nothing."""
        import psycopg

        deadline = time.monotonic() + 30
        with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
            while conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = %s",
                               [self.name]).fetchone()[0]:
                assert time.monotonic() < deadline, f"sessions of {self.name} did not end"
                time.sleep(0.02)
            conn.execute("SELECT pg_stat_clear_snapshot()")
            row = conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                               [self.name]).fetchone()
        return int(row[0])

    def counted(self, *args: str) -> int:
        """How many transactions `wfrun ARGS` commits."""
        before = self.commits()
        self.cli(*args)
        return self.commits() - before


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    import psycopg

    _pg.require()
    name = f"wfrun_commits_{secrets.token_hex(5)}"
    with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
        try:
            conn.execute(f'CREATE DATABASE "{name}"')
        except psycopg.errors.InsufficientPrivilege:
            pytest.skip(f"the test server's user may not create a database ({name}); these "
                        "counts need one of their own")
    try:
        yield Database(tmp_path, name)
    finally:
        with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def per_step(measure: Any, short: int, long: int, most: float = MAX_PER_STEP) -> float:
    """Transactions per step: the slope between `measure(short)` and `measure(long)` steps.
    Noise (an autovacuum worker visiting the database) only ever adds, so the lowest of two
    trials is the figure."""
    slopes = []
    for _ in range(2):
        slopes.append((measure(long) - measure(short)) / (long - short))
        if slopes[-1] <= most:
            break
    return min(slopes)


def test_a_step_of_a_started_run_commits_one_transaction(db: Database) -> None:
    for n in (10, 70):
        db.workflow(f"chain{n}", [f"s{i}" for i in range(n)], STEP_PY)
        assert db.cli("start", f"chain{n}")["status"] == "completed"  # schema, key, manifest

    def measure(n: int) -> int:
        return db.counted("start", f"chain{n}")

    slope = per_step(measure, 10, 70)
    assert slope <= MAX_PER_STEP, f"{slope:.2f} transactions per step"
    # and the runs are whole: one step_completed event per step, in order
    for listed in db.cli("list", "--status", "completed")[:2]:  # the two measured
        shown = db.cli("show", listed["run_id"])
        events = [e["step"] for e in shown["history"] if e["type"] == "step_completed"]
        assert events == list(shown["steps"]) == [f"s{i}" for i in range(len(events))]


@pytest.mark.slow  # a dozen commands on PostgreSQL: CI runs it with -m slow
def test_a_step_of_a_run_a_tick_fires_commits_one_transaction(db: Database) -> None:
    poll = "  - id: poll\n    handler: poll"
    for n in (10, 70):
        db.workflow(f"poll{n}", [f"s{i}" for i in range(n)], POLL_PY, first=poll)
        db.cli("start", f"poll{n}")
        db.cli("tick", "--now", "+1m")  # warm: a tick's own first-time costs

    def measure(n: int) -> int:
        run_id = db.cli("start", f"poll{n}")["run_id"]  # waits for its rerun
        before = db.commits()
        report = db.cli("tick", "--now", "+1m")
        spent = db.commits() - before
        assert report["advanced"] == [{"run_id": run_id, "step": "poll", "reason": "rerun",
                                       "status": "completed"}]
        return spent

    slope = per_step(measure, 10, 70)
    assert slope <= MAX_PER_STEP, f"{slope:.2f} transactions per step"


def _seed(db: Database, workflow: str, count: int, template: dict[str, Any]) -> list[str]:
    """`count` copies of the run `template` (each waiting for its rerun), stored directly."""
    from wfrun.model import Run
    from wfrun.store.postgres import PostgresStore

    store = PostgresStore(db.url)
    run_ids = [f"{workflow}-{secrets.token_hex(6)}" for _ in range(count)]
    try:
        for run_id in run_ids:
            store.create(Run.from_dict({**template, "run_id": run_id}))
    finally:
        store.close()  # (its session ends: the commits of what follows are counted alone)
    return run_ids


@pytest.mark.parametrize(("shape", "workers"), [("once", 1), ("again", 1), ("once", 2)])
def test_a_run_a_tick_fires_commits_two_transactions(db: Database, shape: str,
                                                     workers: int) -> None:
    """SPEC §10's due reruns: what each one more fired run costs (the slope between ticks of
    two batch sizes, so the tick's own start-up cancels): its "started" state and its outcome,
    nothing else (no reading it again after the claims were acquired, no separate release).
    Forked workers (`--workers 2`, both sizes enough to fork two) acquire batches each, as
    separate tick processes do."""
    from wfrun.store.postgres import PostgresStore

    db.workflow("poll", [], RERUN_PY[shape], first="  - id: poll\n    handler: poll")
    first = db.cli("start", "poll")["run_id"]  # schema, key, manifest
    store = PostgresStore(db.url)
    try:
        template = store.load(first).to_dict()  # its rerun due in 10 s
    finally:
        store.close()
    db.cli("tick", "--now", "+1m", "--workers", "1")  # warm: a tick's own first-time costs

    def measure(n: int) -> int:
        run_ids = _seed(db, "poll", n, template)
        before = db.commits()
        # processes acquiring batches of claims (as each of SPEC §10's N workers does)
        report = db.cli("tick", "--now", "+1m", "--workers", str(workers))
        spent = db.commits() - before
        assert sorted(a["run_id"] for a in report["advanced"]) == sorted(run_ids), report
        after = "completed" if shape == "once" else "waiting"
        assert {(a["reason"], a["status"]) for a in report["advanced"]} == {("rerun", after)}
        assert not report["errors"], report
        return spent

    slope = per_step(measure, *((8, 72) if workers == 1 else (40, 104)), MAX_PER_FIRED_RUN)
    print(f"{shape}, {workers} worker(s): {slope:.3f} transactions per fired run")
    assert slope <= MAX_PER_FIRED_RUN, f"{slope:.2f} transactions per fired run"


def _agree(db: Database, run_id: str) -> dict[str, Any]:
    """The run's state, after checking that its history tells the same (read as an outsider)."""
    [(text,)] = db.sql("SELECT snapshot::text FROM wfrun_runs WHERE run_id = %s", run_id)
    run = json.loads(text)
    history = [json.loads(e) for (e,) in db.sql(
        "SELECT event::text FROM wfrun_history WHERE run_id = %s ORDER BY seq", run_id)]
    for sid, state in run["steps"].items():
        done = [e for e in history if e["type"] == "step_completed" and e["step"] == sid]
        started = [e for e in history if e["type"] == "step_started" and e["step"] == sid]
        assert len(done) == (state["status"] == "completed"), (sid, state, history)
        assert len(started) == state["runs"], (sid, state, history)
    assert [e["type"] for e in history].count("completed") == (run["status"] == "completed")
    return run


def test_a_client_killed_between_state_and_history_leaves_neither(db: Database) -> None:
    import psycopg

    (db.root / "workflows" / "gate.yaml").write_text(
        "steps:\n  - id: first\n    handler: first\n  - id: second\n    handler: second\n")
    (db.root / "workflows" / "gate.py").write_text(GATE_PY)
    proc = subprocess.Popen(db.argv("start", "gate", "--run-id", "r1"), cwd=db.root,
                            env=db.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not (db.root / "ready").exists():  # step `first` executes
            assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
            time.sleep(0.01)
        with psycopg.connect(db.url) as blocker:
            # history can be read, not written: the step's save waits here
            blocker.execute("LOCK TABLE wfrun_history IN SHARE MODE")
            mine = blocker.info.backend_pid
            (db.root / "go").touch()
            while not db.sql("SELECT 1 FROM pg_stat_activity WHERE datname = %s "
                             "AND wait_event_type = 'Lock'", db.name):
                assert proc.poll() is None and time.monotonic() < deadline, proc.poll()
                time.sleep(0.01)
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)
            run = _agree(db, "r1")  # what the others see while its save still waits
            assert run["steps"]["first"]["status"] == "running"
            # the server ends the dead client's sessions (as its TCP keepalive would)
            db.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s "
                   "AND pid NOT IN (pg_backend_pid(), %s)", db.name, mine)
            blocker.rollback()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    assert _agree(db, "r1")["steps"]["first"]["status"] == "running"

    recovered = db.cli("tick", "--now", "+1m")
    assert [a["run_id"] for a in recovered["advanced"]] == ["r1"], recovered
    run = _agree(db, "r1")
    assert run["status"] == "completed"
    assert run["steps"]["first"]["runs"] == 2  # executed again: it never finished before
    shown = db.cli("show", "r1")
    assert [e["type"] for e in shown["history"]].count("recovered") == 1


def _take_over(url: str, ready: Any, stop: Any) -> None:
    from wfrun.store.postgres import PostgresStore

    held = PostgresStore(url).claim("r1")
    assert held is not None
    ready.set()
    stop.wait(10)


def test_a_save_that_lost_its_lease_writes_neither_state_nor_events() -> None:
    """The fencing check is in the statement that writes the events too."""
    import psycopg

    from wfrun.errors import ConflictError
    from wfrun.store.postgres import PostgresStore

    from ._runs import make_run

    with _pg.schema() as schema_url:
        name = f"wfrun_fence_{secrets.token_hex(4)}"
        url = f"{schema_url}&application_name={name}"
        mine = PostgresStore(url)
        run = make_run("r1")
        mine.create(run, [{"type": "started"}])
        claim = mine.claim("r1")
        assert claim is not None
        run = mine.load("r1")
        with psycopg.connect(_pg.server_url(), autocommit=True) as conn:
            # its claim's session ends under it (a network cut): another process takes over
            conn.execute("SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                         "WHERE application_name = %s", [name])
        ctx = multiprocessing.get_context("fork")
        ready, stop = ctx.Event(), ctx.Event()
        other = ctx.Process(target=_take_over, args=(url, ready, stop))
        other.start()
        try:
            assert ready.wait(20)
            run.output = "late"
            with mine.lock("r1"), pytest.raises(ConflictError, match=r"r1 .* lost its lease"):
                mine.save(run, [{"type": "step_completed"}])
            assert mine.load("r1").output is None
            assert [e["type"] for e in mine.read_history("r1")] == ["started"]
        finally:
            stop.set()
            other.join(10)
            claim.release()
