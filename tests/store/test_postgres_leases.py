"""Leases on PostgreSQL (SPEC §10, workers on many machines): a claim is renewed while its holder
lives, taken over with a greater fencing token once a paused holder's lease runs out (its saves
and renewals then refused), recovered at once from a killed holder; concurrent `acquire_due`
callers share the due runs; and `wait_for_work` wakes on another process's commit (NOTIFY) and
at the earliest future due time (no polling lag).

Every "other process" is a real one (forked), or a store over a URL of its own (a connection of
its own, as another process has)."""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import _pg
import pytest

from wfrun.durations import to_iso
from wfrun.errors import ConflictError, UsageError
from wfrun.model import PAUSE_SUSPEND, SUSPENDED, Run, StepState

FORK = multiprocessing.get_context("fork")


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        yield schema_url


def store(url: str, who: str = "") -> Any:
    """A store over `url`; `who` gives it connections of its own (as another process has)."""
    from wfrun.store.postgres import PostgresStore

    return PostgresStore(url + (f"&application_name=wfrun_{who}" if who else ""))


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def suspended_run(run_id: str, due: str) -> Run:
    """A run whose one step waits for data until `due` (then its timeout fires)."""
    run = Run(run_id=run_id, workflow="wf", input={}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", steps={"a": StepState()})
    run.status = SUSPENDED
    run.steps["a"].status = SUSPENDED
    run.steps["a"].pause = {"kind": PAUSE_SUSPEND, "since": run.created_at, "due_at": due,
                            "on_timeout": "cancel", "nonce": "n"}
    return run


def wait_until(condition: Callable[[], Any], seconds: float = 5.0) -> Any:
    deadline = time.monotonic() + seconds
    while not (found := condition()):
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.02)
    return found


def child(target: Callable[..., None], *args: Any) -> tuple[Any, Any]:
    """A forked process running `target(pipe, *args)`, and this end of its pipe."""
    mine, theirs = FORK.Pipe()
    proc = FORK.Process(target=target, args=(theirs, *args), daemon=True)
    proc.start()
    return proc, mine


def finish(proc: Any) -> None:
    if proc.is_alive():
        os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)


# -- renewal, takeover, fencing ------------------------------------------------------------------


def test_a_renewed_lease_outlives_its_length(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_LEASE", "600ms")  # renewed every 200 ms
    mine, other = store(url), store(url, "other")
    mine.create(suspended_run("r1", "2026-01-02T00:00:00.000Z"))
    claim = mine.claim("r1")
    assert claim is not None
    first = sql(url, "SELECT expires_at FROM wfrun_claims WHERE run_id = 'r1'")[0][0]
    started = time.monotonic()
    while time.monotonic() - started < 1.3:  # over two lease lengths, renewed by the thread
        assert other.claim("r1") is None
        assert other.is_claimed("r1")
        time.sleep(0.05)
    later = sql(url, "SELECT expires_at, token FROM wfrun_claims WHERE run_id = 'r1'")[0]
    assert later[0] > first + timedelta(milliseconds=700) and later[1] == claim.token
    assert claim.renew() and not claim.lost
    claim.release()
    assert not other.is_claimed("r1")
    again = other.claim("r1")
    assert again is not None and again.token > claim.token


def _pausable_holder(pipe: Any, url: str) -> None:
    """Claim r1, say the token; when told, save r1 as its holder, renew, and say what happened."""
    held = store(url)
    claim = held.claim("r1")
    run = held.load("r1")
    pipe.send(claim.token if claim is not None else None)
    pipe.recv()  # (it is paused here, then let go on)
    run.output = "late result"
    try:
        held.save(run)
        saved = "saved"
    except ConflictError as exc:
        saved = str(exc)
    assert claim is not None
    pipe.send({"save": saved, "renew": claim.renew(), "lost": claim.lost})
    claim.release()


def test_a_paused_holder_loses_its_lease_and_can_no_longer_save(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFRUN_LEASE", "800ms")
    mine = store(url)
    mine.create(suspended_run("r1", "2026-01-02T00:00:00.000Z"))
    proc, pipe = child(_pausable_holder, url)
    try:
        assert pipe.poll(10)
        old = pipe.recv()
        assert isinstance(old, int)
        os.kill(proc.pid, signal.SIGSTOP)  # paused: its renewal thread too; its session lives
        stopped = time.monotonic()
        assert mine.claim("r1") is None  # its lease has not run out yet
        claim = wait_until(lambda: mine.claim("r1"), seconds=5)
        assert time.monotonic() - stopped >= 0.4  # taken over once the lease ran out
        assert claim.token > old
        os.kill(proc.pid, signal.SIGCONT)
        pipe.send("go on")
        assert pipe.poll(10)
        outcome = pipe.recv()
        assert "r1 was taken over by another process" in outcome["save"]
        assert "lost its lease" in outcome["save"] and "WFRUN_LEASE" in outcome["save"]
        assert outcome["renew"] is False and outcome["lost"] is True
        found = mine.load("r1")
        assert (found.output, found.revision) == (None, 1)  # nothing of the old holder's save
        assert mine.is_claimed("r1")  # the new holder's lease was not disturbed
        run = mine.load("r1")
        run.output = "new holder"
        mine.save(run)  # the new holder saves
        assert mine.load("r1").output == "new holder"
        claim.release()
    finally:
        finish(proc)


def _holding(pipe: Any, url: str) -> None:
    claim = store(url).claim("r1")
    pipe.send(claim.token if claim is not None else None)
    pipe.recv()


def test_a_holder_killed_with_kill_9_is_recovered_at_once(url: str) -> None:
    mine = store(url)  # the default lease: 30 s
    mine.create(suspended_run("r1", "2026-01-02T00:00:00.000Z"))
    proc, pipe = child(_holding, url)
    try:
        assert pipe.poll(10)
        old = pipe.recv()
        assert isinstance(old, int) and mine.is_claimed("r1")
        os.kill(proc.pid, signal.SIGKILL)
        killed = time.monotonic()
        claim = wait_until(lambda: mine.claim("r1"), seconds=5)
        assert time.monotonic() - killed < 5  # its session ended: not the lease's 30 s
        assert claim.token > old
        claim.release()
    finally:
        finish(proc)


RECOVER = "steps: [{id: slow}, {id: after}]"
RECOVER_PY = """
import os, time
def slow(ctx):
    if not os.path.exists("killed"):
        open("started", "w").close()
        time.sleep(60)
    return "slow done"
def after(ctx):
    return "after done"
"""


@pytest.mark.slow  # real wfrun processes on PostgreSQL: CI runs it with -m slow
def test_start_killed_with_kill_9_is_recovered_by_the_next_tick(url: str, tmp_path: Any) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "recover.yaml").write_text(RECOVER)
    (tmp_path / "workflows" / "recover.py").write_text(RECOVER_PY)
    cli = [sys.executable, "-m", "wfrun", "--store", url]
    start = subprocess.Popen([*cli, "start", "recover", "--run-id", "r1"], cwd=tmp_path,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: (tmp_path / "started").exists(), seconds=30)
    finally:
        start.kill()  # SIGKILL, with the step executing
        start.wait(10)
    (tmp_path / "killed").touch()
    tick = subprocess.run([*cli, "tick", "--json"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert tick.returncode == 0, tick.stderr

    advanced = json.loads(tick.stdout)["advanced"]
    assert [(a["run_id"], a["reason"], a["status"]) for a in advanced] == [
        ("r1", "recovered", "completed")]


# -- acquire_due ---------------------------------------------------------------------------------


def _acquirer(pipe: Any, url: str, now: str) -> None:
    held = store(url)
    pipe.send("ready")
    pipe.recv()
    claims = held.acquire_due(now)
    pipe.send([claim.run_id for claim in claims])
    pipe.recv()  # held until both have answered
    for claim in claims:
        claim.release()


def test_concurrent_acquirers_take_disjoint_runs_and_together_all_due_ones(url: str) -> None:
    mine = store(url)
    due = [f"r{i:03d}" for i in range(150)]  # several batches each
    for i, run_id in enumerate(due):
        mine.create(suspended_run(run_id, f"2026-01-02T00:{i // 60:02d}:{i % 60:02d}.000Z"))
    mine.create(suspended_run("later", "2027-01-01T00:00:00.000Z"))
    procs = [child(_acquirer, url, "2026-06-01T00:00:00.000Z") for _ in range(2)]
    try:
        for _, pipe in procs:
            assert pipe.poll(10) and pipe.recv() == "ready"
        for _, pipe in procs:
            pipe.send("go")
        got = []
        for _, pipe in procs:
            assert pipe.poll(30)
            got.append(pipe.recv())
        assert not set(got[0]) & set(got[1])
        assert sorted(got[0] + got[1]) == due  # every due run, and nothing else
        for ids in got:
            assert ids == sorted(ids)  # in due order
        assert mine.acquire_due("2026-06-01T00:00:00.000Z") == []  # all held
        for _, pipe in procs:
            pipe.send("done")
    finally:
        for proc, _ in procs:
            proc.join(10)
            finish(proc)


def test_acquire_due_skips_live_leases_and_takes_over_dead_ones(url: str) -> None:
    mine, other = store(url), store(url, "other")
    for i in range(4):
        mine.create(suspended_run(f"r{i}", f"2026-01-02T00:00:0{i}.000Z"))
    held = other.claim("r0")
    assert held is not None
    batch = mine.acquire_due("2026-06-01T00:00:00.000Z", limit=2)
    assert [c.run_id for c in batch] == ["r1", "r2"]  # r0 is held; at most 2
    assert [c.run_id for c in mine.acquire_due("2026-06-01T00:00:00.000Z")] == ["r3"]
    assert sql(url, "SELECT count(*) FROM wfrun_claims")[0][0] == 4
    # the other holder's session ends (as when its process dies): r0 is free at once
    sql(url, "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
             "WHERE application_name = 'wfrun_other'")
    taken = mine.acquire_due("2026-06-01T00:00:00.000Z")
    assert [c.run_id for c in taken] == ["r0"] and taken[0].token > held.token


def test_an_acquire_that_began_before_another_committed_still_takes_the_free_runs(
    url: str
) -> None:
    """Two acquirers at once, each asking for 20 of 40 due runs (as the two workers of a tick
    do): B's statement finds the due runs before A commits, and locks their rows after, so it
    selects A's runs and finds their leases live only when it gives its own. It is held there
    by a third session's lease of the first run, given in a transaction still open (B's lease
    of that run waits for it, B holding the run's row, which A therefore skips); on its own,
    the same happens whenever A commits while B's statement is under way. B gets the runs
    still free, not none."""
    import psycopg

    mine, a, b = store(url), store(url, "a"), store(url, "b")
    due = [f"r{i:02d}" for i in range(40)]
    for i, run_id in enumerate(due):
        mine.create(suspended_run(run_id, f"2026-01-02T00:00:{i:02d}.000Z"))
    now = "2026-06-01T00:00:00.000Z"
    for acquirer in (a, b):
        assert acquirer.acquire_due(now, 0) == []  # connected
    base = mine._server().key("lease", "")
    got: dict[str, list[str]] = {}
    with psycopg.connect(url) as third:  # a transaction, open until its commit
        third.execute("INSERT INTO wfrun_claims (run_id, owner, token, acquired_at, expires_at) "
                      "VALUES ('r00', 'third', nextval('wfrun_claim_tokens'), now(), "
                      "now() + interval '1 minute') "
                      "RETURNING pg_try_advisory_lock(%s::bigint # token)", [base])
        thread = threading.Thread(target=lambda: got.update(
            b=[claim.run_id for claim in b.acquire_due(now, 20)]))
        thread.start()
        try:
            wait_until(lambda: sql(url, "SELECT 1 FROM pg_stat_activity WHERE application_name "
                                        "= 'wfrun_b' AND wait_event_type = 'Lock'"))
            got["a"] = [claim.run_id for claim in a.acquire_due(now, 20)]
            assert got["a"] == due[1:21]  # r00's row is B's: skipped
        finally:
            third.commit()  # the third's lease of r00: live while its session lasts
            thread.join(10)
        assert got["b"] == due[21:]  # the 19 left free (as of B's statement, it had 20)
        assert sql(url, "SELECT count(*) FROM wfrun_claims")[0][0] == 40


def test_a_bad_lease_length_names_the_variable(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_LEASE", "soon")
    with pytest.raises(UsageError, match="WFRUN_LEASE='soon' is not a lease length"):
        store(url)
    env = {**os.environ, "WFRUN_LEASE": "10ms"}
    proc = subprocess.run([sys.executable, "-m", "wfrun", "--store", url, "list"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: WFRUN_LEASE='10ms' is too short a lease")
    assert "Traceback" not in proc.stderr


# -- wait_for_work -------------------------------------------------------------------------------


def _waiter(pipe: Any, url: str, timeout: float) -> None:
    waiting = store(url)
    stop = threading.Event()
    waiting.wait_for_work(0, stop)  # listening from now on
    pipe.send("listening")
    started = time.monotonic()
    waiting.wait_for_work(timeout, stop)
    pipe.send(time.monotonic() - started)


def test_a_save_in_one_process_wakes_a_waiter_in_another(url: str) -> None:
    mine = store(url)
    mine.create(suspended_run("r1", "2099-01-01T00:00:00.000Z"))
    proc, pipe = child(_waiter, url, 10.0)
    try:
        assert pipe.poll(10) and pipe.recv() == "listening"
        time.sleep(0.1)  # it waits
        run = mine.load("r1")
        run.steps["a"].pause = {**run.steps["a"].pause, "due_at": "2026-01-01T00:00:00.000Z"}
        mine.save(run)  # due now (a resume, an event): committed, so notified
        saved = time.monotonic()
        assert pipe.poll(5)
        waited = pipe.recv()
        assert waited < 3 and time.monotonic() - saved < 2  # not its 10 s timeout
    finally:
        finish(proc)


def test_a_save_that_changes_no_due_time_wakes_nobody(url: str) -> None:
    mine = store(url)
    mine.create(suspended_run("r1", "2099-01-01T00:00:00.000Z"))
    proc, pipe = child(_waiter, url, 0.5)
    try:
        assert pipe.poll(10) and pipe.recv() == "listening"
        run = mine.load("r1")
        run.output = "same due time"
        mine.save(run)
        assert pipe.poll(5)
        assert pipe.recv() >= 0.45  # it waited until its timeout
    finally:
        finish(proc)


def test_the_earliest_future_due_time_ends_the_wait(url: str) -> None:
    mine = store(url)
    mine.create(suspended_run("far", "2099-01-01T00:00:00.000Z"))
    stop = threading.Event()
    mine.wait_for_work(0, stop)  # listening (its own create is not news any more)
    due = datetime.now(UTC) + timedelta(seconds=0.6)
    mine.create(suspended_run("soon", to_iso(due)))  # as a sleep of 600 ms does
    mine.wait_for_work(0, stop)  # (the create's notification: heard)
    assert mine.due(to_iso(datetime.now(UTC))) == []
    mine.wait_for_work(10, stop)
    woke = datetime.now(UTC)
    assert due <= woke < due + timedelta(seconds=1)  # at the sleep's end, not the 10 s timeout
    assert mine.due(to_iso(woke)) == ["soon"]


def test_a_wait_ends_at_once_while_a_due_run_s_holder_is_gone(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WFRUN_LEASE", "500ms")
    mine = store(url)
    mine.create(suspended_run("r1", "2026-01-02T00:00:00.000Z"))  # due
    stop = threading.Event()
    mine.wait_for_work(0, stop)
    proc, pipe = child(_holding, url)
    try:
        assert pipe.poll(10) and isinstance(pipe.recv(), int)
        os.kill(proc.pid, signal.SIGSTOP)  # alive, but its lease will run out
        started = time.monotonic()
        mine.wait_for_work(10, stop)  # ends when the lease runs out: the run is to be recovered
        assert time.monotonic() - started < 1.5
        taken = mine.claim("r1")
        assert taken is not None
        taken.release()
    finally:
        finish(proc)
    monkeypatch.setenv("WFRUN_LEASE", "30s")
    other = store(url, "other")
    proc, pipe = child(_holding, url)
    try:
        assert pipe.poll(10) and isinstance(pipe.recv(), int)
        os.kill(proc.pid, signal.SIGKILL)  # gone: its lease (30 s) is no longer live
        proc.join(10)
        wait_until(lambda: not other.is_claimed("r1"))
        started = time.monotonic()
        other.wait_for_work(10, stop)
        assert time.monotonic() - started < 0.5  # at once, not at the lease's end
    finally:
        finish(proc)


def test_a_listening_connection_the_server_ended_is_made_again(url: str) -> None:
    from wfrun.store.postgres import _connect

    mine, other = store(url), store(url, "other")
    stop = threading.Event()
    mine.wait_for_work(0, stop)
    listening = _connect.server(mine.url).listener.conn.info.backend_pid
    sql(url, "SELECT pg_terminate_backend(%s, 10000)", listening)
    started = time.monotonic()
    mine.wait_for_work(0.3, stop)  # the connection is found gone: a plain wait, no error
    assert 0.25 <= time.monotonic() - started < 2
    mine.wait_for_work(0, stop)  # listening again, on a new connection
    assert _connect.server(mine.url).listener.conn.info.backend_pid != listening
    woke = threading.Timer(0.2, lambda: other.create(suspended_run("r1", "2026-01-01T00:00:00.000Z")))
    woke.start()
    started = time.monotonic()
    mine.wait_for_work(10, stop)
    assert time.monotonic() - started < 3  # woken by the create, not the timeout
    woke.join()


def test_a_stop_request_ends_the_wait_within_a_fifth_of_a_second(url: str) -> None:
    mine = store(url)
    stop = threading.Event()
    mine.wait_for_work(0, stop)  # connected and listening
    timer = threading.Timer(0.2, stop.set)
    timer.start()
    started = time.monotonic()
    mine.wait_for_work(10, stop)
    assert time.monotonic() - started < 0.6
    timer.join()


NAP = "steps: [{id: nap, sleep: 700ms}, {id: after}]"
NAP_PY = """
def after(ctx):
    return "woke"
"""


@pytest.mark.slow  # real wfrun processes on PostgreSQL: CI runs it with -m slow
def test_tick_watch_continues_a_sleeping_run_when_its_sleep_ends(url: str, tmp_path: Any) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "nap.yaml").write_text(NAP)
    (tmp_path / "workflows" / "nap.py").write_text(NAP_PY)
    cli = [sys.executable, "-m", "wfrun", "--store", url]
    watch = subprocess.Popen([*cli, "tick", "--watch", "--interval", "60", "--json"],
                             cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        time.sleep(0.5)  # it listens (a first tick found nothing)
        start = subprocess.run([*cli, "start", "nap", "--run-id", "r1", "--json"], cwd=tmp_path,
                               capture_output=True, text=True, timeout=60)
        assert start.returncode == 0, start.stderr
        assert json.loads(start.stdout)["status"] == "waiting"
        slept = time.monotonic()
        mine = store(url)
        wait_until(lambda: mine.load("r1").status == "completed", seconds=10)
        assert time.monotonic() - slept < 5  # woken by the sleep's due time, not the 60 s
        assert mine.load("r1").output == "woke"
    finally:
        watch.send_signal(signal.SIGTERM)
        out, err = watch.communicate(timeout=30)
    assert watch.returncode == 0, err
    assert "Traceback" not in err
    assert '"r1"' in out  # the watcher advanced it
