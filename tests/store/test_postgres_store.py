"""What only the PostgreSQL store promises beyond the Store contract (test_contract.py): the
schema it creates and migrates itself (also when many processes start at once), fencing of a
claim that was lost, connections that are dropped and come back, forked tick workers, and
messages that name the database."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _pg
import pytest

from wfrun.errors import ConflictError, NotFoundError, StateError
from wfrun.testing import Harness

from ._runs import make_run


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        # an application name of its own: this test's sessions can be told from others'
        yield f"{schema_url}&application_name=wfrun_{time.monotonic_ns()}"


def sql(url: str, query: str, *params: Any) -> list[tuple[Any, ...]]:
    """Run one statement as an outsider (a DBA, another tool) would."""
    import psycopg

    plain = url.rsplit("&application_name=", 1)[0]
    with psycopg.connect(plain, autocommit=True) as conn:
        cur = conn.execute(query, params or None)
        return cur.fetchall() if cur.description else []


def store(url: str) -> Any:
    from wfrun.store.postgres import PostgresStore

    return PostgresStore(url)


def _first_use(url: str, index: int, go: Any, done: Any) -> None:
    go.wait(10)
    try:
        store(url).create(make_run(f"r{index}"))
        done.put("ok")
    except BaseException as exc:
        done.put(f"{type(exc).__name__}: {exc}")


def test_many_processes_using_an_empty_schema_at_once_create_it_once(url: str) -> None:
    ctx = multiprocessing.get_context("fork")
    go, done = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_first_use, args=(url, i, go, done)) for i in range(6)]
    for proc in procs:
        proc.start()
    go.set()
    results = [done.get(timeout=30) for _ in procs]
    for proc in procs:
        proc.join(10)
    assert results == ["ok"] * 6
    from wfrun.store.postgres import _schema

    assert sql(url, "SELECT version FROM wfrun_schema ORDER BY version") == [
        (v,) for v in range(1, _schema.VERSION + 1)]
    assert store(url).run_ids() == [f"r{i}" for i in range(6)]


def test_a_schema_migrated_by_a_newer_wfrun_is_refused(url: str) -> None:
    store(url).create(make_run("r1"))
    store(url).close()
    sql(url, "INSERT INTO wfrun_schema (version) VALUES (999)")
    with pytest.raises(StateError, match="schema version 999, newer than this wfrun"):
        store(url).load("r1")


def test_a_search_path_naming_no_schema_is_one_sentence() -> None:
    _pg.require()
    url = _pg.with_search_path(_pg.server_url(), "wfrun_test_does_not_exist")
    try:
        with pytest.raises(StateError, match="no schema of search_path") as caught:
            store(url).load("r1")
        assert "\n" not in caught.value.message
    finally:
        store(url).close()


def test_messages_name_the_database_and_the_run(url: str) -> None:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url)
    found = store(url)
    schema = info["options"].rpartition("=")[2]  # (the test's own: -csearch_path=SCHEMA)
    found.exists("r1")  # (connected: the schema of its tables is known)
    assert found._describe("r1") == (
        f"postgresql://{info['host']}:{info['port']}/{info['dbname']} (schema {schema}) run r1")
    with pytest.raises(NotFoundError, match=f"no run r1 in database '{info['dbname']}' on "
                                            f"{info['host']}:{info['port']}"):
        found.load("r1")


def _hold(url: str, run_id: str, ready: Any, stop: Any) -> None:
    held = store(url).claim(run_id)
    assert held is not None
    ready.set()
    stop.wait(10)


def test_a_process_that_lost_its_claim_cannot_save_over_the_new_holder(url: str) -> None:
    mine = store(url)
    mine.create(make_run("r1"))
    claim = mine.claim("r1")
    assert claim is not None
    run = mine.load("r1")
    # its session ends under it (a network cut, a restart, an administrator)
    pid = sql(url, "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid IN "
                   "(SELECT pid FROM pg_stat_activity WHERE application_name = %s)",
              url.rsplit("=", 1)[1])
    assert len(pid) == 1
    sql(url, "SELECT pg_terminate_backend(%s, 10000)", pid[0][0])
    ctx = multiprocessing.get_context("fork")
    ready, stop = ctx.Event(), ctx.Event()
    other = ctx.Process(target=_hold, args=(url, "r1", ready, stop))
    other.start()
    try:
        assert ready.wait(10)  # the run was claimed again, elsewhere
        run.output = "late result"
        with pytest.raises(ConflictError, match="taken over by another process"):
            mine.save(run)
        assert mine.load("r1").output is None
    finally:
        stop.set()
        other.join(10)
        claim.release()
    again = mine.claim("r1")  # the main connection came back
    assert again is not None
    again.release()


def test_connections_dropped_between_operations_are_replaced(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.store.postgres import _connect

    monkeypatch.setattr(_connect, "CHECK_AFTER_IDLE", 0.2)  # (1 s: a command's pace)
    found = store(url)
    found.create(make_run("r1"))
    assert found.claim("r1") is not None
    name = url.rsplit("=", 1)[1]
    killed = sql(url, "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                      "WHERE application_name = %s", name)
    assert len(killed) >= 2  # the main connection and a pooled one
    time.sleep(0.3)
    assert found.load("r1").run_id == "r1"  # a pooled connection idle a while is checked
    assert not found.is_claimed("r1")  # the claim died with its session, as after a crash
    assert found.claim("r1") is not None  # the main connection is made again


def test_a_state_lock_held_too_long_is_busy(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.store.postgres import _connect

    monkeypatch.setattr(_connect, "LOCK_TIMEOUT", "300ms")
    found = store(url + "&connect_timeout=5")  # a URL of its own: connections with that timeout
    found.create(make_run("r1"))
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with found.lock("r1"):
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert holding.wait(10)
        started = time.monotonic()
        with pytest.raises(ConflictError, match="run r1 is busy"), found.lock("r1"):
            pass
        assert time.monotonic() - started < 5
    finally:
        release.set()
        thread.join(10)
        found.close()
    with found.lock("r1"):  # free again
        assert found.load("r1").revision == 1


def test_a_save_under_the_lock_is_committed_when_it_returns(url: str) -> None:
    found, other = store(url), store(url)
    found.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    with found.lock("r1"):
        run = found.load("r1")
        run.output = "saved"
        found.save(run)
        seen: list[Any] = []
        reader = threading.Thread(target=lambda: seen.append(other.load("r1").output))
        reader.start()
        reader.join(10)
        assert seen == ["saved"]
        run.output = "twice"
        found.save(run)  # a second change under the same `with`: the lock is taken again
    assert other.load("r1").revision == 3


def test_a_hand_edited_next_due_is_reported_by_check(url: str) -> None:
    found = store(url)
    found.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    sql(url, "UPDATE wfrun_runs SET next_due = NULL")
    runs, problems = found.check()
    assert runs == 1 and [p["kind"] for p in problems] == ["index"]
    assert "r1" in problems[0]["path"]


POLL = "steps: [{id: poll}]"
POLL_PY = """
def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("10s", {}, 3)
    return ctx.run.runs
"""


def test_forked_tick_workers_share_the_due_runs_exactly_once(url: str, tmp_path: Path) -> None:
    (tmp_path / "workflows").mkdir()
    (tmp_path / "workflows" / "poll.yaml").write_text(POLL)
    (tmp_path / "workflows" / "poll.py").write_text(POLL_PY)
    harness = Harness(tmp_path / "workflows", url)
    runs = [harness.start("poll")["run_id"] for _ in range(40)]
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", "--store", url, "--workflows-dir",
         str(tmp_path / "workflows"), "tick", "--workers", "2", "--now", "2099-01-01T00:00:00Z",
         "--json"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["errors"] == []
    assert sorted(a["run_id"] for a in report["advanced"]) == sorted(runs)
    for run_id in runs:
        doc = harness.show(run_id)
        assert (doc["status"], doc["steps"]["poll"]["runs"]) == ("completed", 2)
        assert [e["type"] for e in harness.history(run_id)].count("timer_fired") == 1


def test_runs_stored_at_schema_version_1_are_migrated_with_their_data(url: str) -> None:
    from wfrun.store.postgres import _schema

    from ._runs import listed as _listed

    found = store(url)
    for run in (_listed("old", "2026-01-01T00:00:00.000Z", status="suspended"),
                _listed("older", "2025-01-01T00:00:00.000Z")):
        found.create(run)
    found.close()
    # the tables as a wfrun of schema version 1 left them
    sql(url, "ALTER TABLE wfrun_runs DROP COLUMN created, DROP COLUMN updated, "
             "DROP COLUMN waits_until, DROP COLUMN suspended")
    sql(url, "CREATE INDEX wfrun_runs_newest ON wfrun_runs (created_at DESC, run_id DESC)")
    sql(url, "CREATE INDEX wfrun_runs_status ON wfrun_runs (status, created_at DESC)")
    sql(url, "DELETE FROM wfrun_schema WHERE version > 1")
    again = store(url)
    page = again.find_runs()
    assert [(r.run_id, r.created_at, r.status) for r in page.runs] == [
        ("old", "2026-01-01T00:00:00.000Z", "suspended"),
        ("older", "2025-01-01T00:00:00.000Z", "completed")]
    assert page.runs[0].next_due == "2030-01-01T00:00:00.000Z"
    assert [r.run_id for r in again.pending()[0]] == ["old"]
    assert sql(url, "SELECT max(version) FROM wfrun_schema") == [(_schema.VERSION,)]


def test_two_threads_waiting_for_each_others_lock_give_way_as_busy(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.store.postgres import _connect

    # each lock is a session of its own: the server cannot see the cycle, the lock timeout ends it
    monkeypatch.setattr(_connect, "LOCK_TIMEOUT", "500ms")
    found = store(url)
    for run_id in ("a", "b"):
        found.create(make_run(run_id))
    both = threading.Barrier(2, timeout=10)
    outcomes: dict[str, str] = {}

    def cross(first: str, second: str) -> None:
        try:
            with found.lock(first):
                both.wait()
                with found.lock(second):
                    outcomes[first] = "ok"
        except ConflictError as exc:
            outcomes[first] = exc.message
        except BaseException as exc:
            outcomes[first] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=cross, args=pair) for pair in (("a", "b"), ("b", "a"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(outcomes) == ["a", "b"]  # neither hangs
    busy = [o for o in outcomes.values() if o != "ok"]
    assert busy and all("is busy" in o and "try again" in o for o in busy), outcomes
    with found.lock("a"), found.lock("b"):  # and both locks are free again
        pass


def test_operations_go_on_when_every_connection_was_just_terminated(url: str) -> None:
    found = store(url)
    found.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    found.append_history("r1", [{"type": "a"}])
    name = url.rsplit("=", 1)[1]
    for _ in range(2):
        killed = sql(url, "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                          "WHERE application_name = %s", name)
        assert killed
        # used a moment ago, so not checked before use: found lost, then done on another one
        assert found.load("r1").run_id == "r1"
        with found.lock("r1"):
            run = found.load("r1")
            run.output = run.revision
            found.save(run)
        found.append_history("r1", [{"type": "b"}])
        assert [r.run_id for r in found.find_runs().runs] == ["r1"]
    assert [e["type"] for e in found.read_history("r1")] == ["a", "b", "b"]  # never twice
    assert found.load("r1").revision == 3


def test_a_create_whose_session_the_server_ended_mid_statement_is_sent_once_more(
        url: str) -> None:
    found = store(url)
    assert not found.exists("r0")  # the tables exist from here on
    # the first insert into wfrun_runs ends its own session (a sequence is not rolled back)
    sql(url, "CREATE SEQUENCE cut_once")
    sql(url, """CREATE FUNCTION cut_first_insert() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                  IF nextval('cut_once') = 1 THEN
                    PERFORM pg_terminate_backend(pg_backend_pid());
                    PERFORM pg_sleep(5);
                  END IF;
                  RETURN NEW;
                END $$""")
    sql(url, "CREATE TRIGGER cut BEFORE INSERT ON wfrun_runs FOR EACH ROW "
             "EXECUTE FUNCTION cut_first_insert()")
    found.create(make_run("r1"), [{"type": "started"}])
    assert sql(url, "SELECT last_value FROM cut_once") == [(2,)]  # sent twice, stored once
    assert found.load("r1").revision == 1
    assert [e["type"] for e in found.read_history("r1")] == ["started"]


def _answer_lost(monkeypatch: pytest.MonkeyPatch, before: bool) -> None:
    """The next state change of the store loses its connection before the server's answer
    arrives: before the statement reached the server, or after it committed."""
    from wfrun.store.postgres import PostgresStore, _failures

    sent = PostgresStore._change

    def change(self: Any, run_id: str, statement: str, params: dict[str, Any]) -> int:
        monkeypatch.setattr(PostgresStore, "_change", sent)
        if not before:
            sent(self, run_id, statement, params)
        raise _failures.ConnectionLost("the connection to PostgreSQL failed: server closed the "
                                      "connection unexpectedly; try again", applied=True)

    monkeypatch.setattr(PostgresStore, "_change", change)


def test_a_create_that_committed_before_its_answer_was_lost_is_not_made_twice(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = store(url)
    _answer_lost(monkeypatch, before=False)
    run = make_run("r1")
    found.create(run, [{"type": "started"}])
    assert run.revision == 1 and found.load("r1").revision == 1
    assert [e["type"] for e in found.read_history("r1")] == ["started"]
    with found.lock("r1"):  # and the run goes on as any other
        found.save(run, [{"type": "next"}])
    assert found.load("r1").revision == 2


def test_a_create_lost_while_another_process_created_the_run_is_a_conflict(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    found = store(url)
    other = make_run("r1")
    other.input = {"n": 2}
    store(url).create(other, [{"type": "started"}])
    _answer_lost(monkeypatch, before=True)
    with pytest.raises(ConflictError, match="run r1 already exists"):
        found.create(make_run("r1"), [{"type": "started"}])
    assert found.load("r1").input == {"n": 2}
    assert [e["type"] for e in found.read_history("r1")] == ["started"]


def test_a_create_lost_twice_says_the_store_is_out_of_reach(
        url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from wfrun.errors import StoreUnavailable
    from wfrun.store.postgres import PostgresStore, _failures

    def change(self: Any, run_id: str, statement: str, params: dict[str, Any]) -> int:
        raise _failures.ConnectionLost("the connection to PostgreSQL failed: server closed the "
                                      "connection unexpectedly; try again", applied=True)

    found = store(url)
    assert not found.exists("r1")
    monkeypatch.setattr(PostgresStore, "_change", change)
    with pytest.raises(StoreUnavailable, match="server closed the connection"):
        found.create(make_run("r1"))
    monkeypatch.undo()
    assert not found.exists("r1")
