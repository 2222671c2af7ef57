"""`wfrun doctor` on PostgreSQL checks the schema (SPEC §10): what the migrations create is
what doctor expects, and a table, column, index or trigger changed by hand is reported (exit 5);
history and logs left by a run's row deleted by hand are a harmless warning (exit 0)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _pg
import pytest

from wfrun.store.postgres import PostgresStore
from wfrun.store.postgres._schema import INDEXES, SEQUENCES, TABLES, TRIGGERS

from ._runs import make_run


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        yield schema_url


def sql(url: str, query: str) -> list[tuple[Any, ...]]:
    """One statement as a DBA would run it."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(query)
        return cur.fetchall() if cur.description else []


def test_what_doctor_expects_is_exactly_what_the_migrations_create(url: str) -> None:
    store = PostgresStore(url)
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    relations = sql(url, "SELECT c.relname, c.relkind FROM pg_class c JOIN pg_namespace n "
                         "ON n.oid = c.relnamespace WHERE n.nspname = current_schema()")
    assert {name for name, kind in relations if kind == "r"} == set(TABLES)
    assert {name for name, kind in relations if kind == "i"} == set(INDEXES)
    assert {name for name, kind in relations if kind == "S"} == set(SEQUENCES)
    for table, columns in TABLES.items():
        found = sql(url, "SELECT column_name FROM information_schema.columns WHERE "
                         f"table_schema = current_schema() AND table_name = '{table}'")
        assert sorted(name for (name,) in found) == sorted(columns), table
    triggers = sql(url, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND "
                        "tgrelid = 'wfrun_runs'::regclass")
    assert sorted(name for (name,) in triggers) == sorted(TRIGGERS)
    assert store.check() == (1, [])


def _doctor(url: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    proc = subprocess.run([sys.executable, "-m", "wfrun", "--store", url, "doctor", "--json"],
                          capture_output=True, text=True, timeout=60, cwd=cwd, env=env)
    return proc.returncode, json.loads(proc.stdout or "{}"), proc.stderr


@pytest.mark.parametrize(("damage", "said"), [
    ("ALTER TABLE wfrun_history RENAME TO wfrun_history_old", "table wfrun_history is missing"),
    ("ALTER TABLE wfrun_runs DROP COLUMN waits_until", "column wfrun_runs.waits_until is missing"),
    ("DROP INDEX wfrun_runs_due", "index wfrun_runs_due on wfrun_runs is missing"),
    ("ALTER TABLE wfrun_runs DISABLE TRIGGER wfrun_runs_new", "trigger wfrun_runs_new"),
    ("DROP SEQUENCE wfrun_claim_tokens", "sequence wfrun_claim_tokens is missing"),
])
def test_a_schema_changed_by_hand_is_reported_by_doctor(
        url: str, tmp_path: Path, damage: str, said: str) -> None:
    PostgresStore(url).create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    code, report, stderr = _doctor(url, tmp_path)
    assert code == 0 and report["problems"] == [], stderr
    sql(url, damage)
    code, report, stderr = _doctor(url, tmp_path)
    assert code == 5, (report, stderr)
    problems = [p for p in report["problems"] if p["kind"] == "schema"]
    assert len(problems) == 1 and said in problems[0]["reason"], report
    assert "restore" in problems[0]["reason"] and "Traceback" not in stderr


def test_tables_whose_version_table_was_dropped_are_refused_not_created_again(
        url: str, tmp_path: Path) -> None:
    PostgresStore(url).create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    sql(url, "DROP TABLE wfrun_schema")
    code, _report, stderr = _doctor(url, tmp_path)
    assert code == 5 and "lost their version table" in stderr and "Traceback" not in stderr
    assert sql(url, "SELECT run_id FROM wfrun_runs") == [("r1",)]


def test_doctor_on_an_empty_schema_creates_nothing(url: str, tmp_path: Path) -> None:
    code, report, stderr = _doctor(url, tmp_path)
    assert code == 0 and report["runs"] == 0 and report["problems"] == [], stderr
    assert "holds no wfrun state yet" in stderr  # not a silent "no problems"
    assert sql(url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                    "c.relnamespace WHERE n.nspname = current_schema()") == [(0,)]


def test_doctor_on_a_schema_that_does_not_exist_says_so(url: str, tmp_path: Path) -> None:
    missing = url.replace("search_path%3D", "search_path%3Dwfrun_no_such_")
    assert missing != url
    code, report, stderr = _doctor(missing, tmp_path)
    assert code == 5 and report == {}, (report, stderr)
    assert "no schema of search_path" in stderr and "Traceback" not in stderr


def test_doctor_reports_a_schedule_state_edited_in_its_row(url: str, tmp_path: Path) -> None:
    store = PostgresStore(url)
    store.create(make_run("r1", "2026-01-02T00:00:00.000Z"))
    store.save_schedule_state("beat", {"through": "2026-03-02T09:00:00.000Z"}, 0)
    sql(url, """UPDATE wfrun_schedules SET state = '{"through": "garbage"}'""")
    code, report, _stderr = _doctor(url, tmp_path)
    assert code == 5 and [p["kind"] for p in report["problems"]] == ["schedule"]
    assert "'through' is not a time" in report["problems"][0]["reason"]


def test_doctor_notes_history_and_logs_of_a_row_deleted_by_hand(url: str, tmp_path: Path) -> None:
    store = PostgresStore(url)
    for run_id in ("r1", "r2", "r3"):
        store.create(make_run(run_id, "2026-01-02T00:00:00.000Z"), [{"type": "started"}])
    store.append_log("r2", [{"text": "hi"}])
    store.close()
    sql(url, "DELETE FROM wfrun_runs WHERE run_id IN ('r2', 'r3')")  # by hand
    code, report, stderr = _doctor(url, tmp_path)
    assert code == 0 and report["ok"] and report["runs"] == 1, (report, stderr)
    notes = report["notes"]
    assert [(n["kind"], n["path"].rpartition(" run ")[2]) for n in notes] == [
        ("orphan", "r2"), ("orphan", "r3")], notes
    schema = url.rpartition("search_path%3D")[2]
    assert notes[0]["reason"].endswith(
        f"remove them with DELETE FROM {schema}.wfrun_history WHERE run_id = 'r2'; "
        f"DELETE FROM {schema}.wfrun_logs WHERE run_id = 'r2';"), notes[0]
    assert "history events in wfrun_history and log records in wfrun_logs" in notes[0]["reason"]
    assert notes[1]["reason"].endswith(
        f"DELETE FROM {schema}.wfrun_history WHERE run_id = 'r3';"), notes[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    human = subprocess.run([sys.executable, "-m", "wfrun", "--store", url, "doctor"],
                           capture_output=True, text=True, timeout=60, cwd=tmp_path, env=env)
    assert human.returncode == 0 and "no problems; 2 harmless warning(s)" in human.stdout
    assert human.stderr.count("warning: ") == 2 and "has no row in wfrun_runs" in human.stderr

    for note in notes:  # as the notes say
        sql(url, note["reason"].rpartition(" remove them with ")[2])
    code, report, stderr = _doctor(url, tmp_path)
    assert code == 0 and report["notes"] == [] and report["problems"] == [], (report, stderr)
    assert sql(url, "SELECT DISTINCT run_id FROM wfrun_history") == [("r1",)]
