"""The PostgreSQL store URL in the command line's words: messages about a run name the schema
its tables are in (one database, a schema per project), a search_path naming no schema that
exists, or whose first schema does not exist, is a missing store for `list`, `pending` and
`tick` (a warning, exit 0, as a state directory that does not exist: SPEC §5), and a URL
parameter whose value libpq or psycopg refuses is a usage error (exit 2) naming the
parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import _pg
import pytest

from wfrun.errors import StoreMissing, UsageError
from wfrun.store.postgres import PostgresStore

from ._pgcli import project, schema_of, sql, wfrun
from ._runs import make_run


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        yield schema_url










def address(url: str) -> str:
    """The database as messages name it: postgresql://HOST:PORT/DB."""
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(url)
    return f"postgresql://{info['host']}:{info['port']}/{info['dbname']}"


# -- 1: the schema in what names a run or a table ------------------------------------------------

def test_an_unreadable_run_is_named_with_its_schema(url: str, tmp_path: Path) -> None:
    PostgresStore(url).create(make_run("r01", "2026-01-02T00:00:00.000Z"))
    sql(url, "UPDATE wfrun_runs SET snapshot = '{\"not\": \"a run\"}'")
    schema = schema_of(url)
    assert schema.startswith("wfrun_test_")
    # e.g. postgresql://127.0.0.1:5432/test (schema wfrun_test_...) run r01
    label = f"{address(url)} (schema {schema}) run r01"

    shown = wfrun(project(tmp_path), url, "show", "r01")
    assert shown.code == 5 and label in shown.stderr, shown

    doctor = wfrun(tmp_path, url, "doctor", "--json")
    assert doctor.code == 5, doctor
    [problem] = json.loads(doctor.stdout)["problems"]
    assert problem["path"] == label and problem["kind"] == "snapshot", problem
    assert "password" not in doctor.stdout

    said = wfrun(tmp_path, url, "doctor")
    assert said.code == 5 and said.stdout.startswith(label), said
    assert said.stderr.strip().endswith("see the list above (each with where it is and why)")
    assert "its file" not in said.stderr  # no files on PostgreSQL


def test_a_damaged_table_is_named_with_its_schema(url: str, tmp_path: Path) -> None:
    PostgresStore(url).create(make_run("r01", "2026-01-02T00:00:00.000Z"))
    sql(url, "DROP INDEX wfrun_runs_due")
    doctor = wfrun(tmp_path, url, "doctor", "--json")
    assert doctor.code == 5, doctor
    [problem] = json.loads(doctor.stdout)["problems"]
    assert problem["kind"] == "schema"
    assert problem["path"].endswith(f"(schema {schema_of(url)}) wfrun_runs"), problem


def test_a_missing_run_and_doctor_name_the_schema(url: str, tmp_path: Path) -> None:
    schema = schema_of(url)
    database = f"database '{address(url).rpartition('/')[2]}' on "
    empty = wfrun(tmp_path, url, "doctor")  # no tables yet
    assert empty.code == 0 and f"{address(url)} (schema {schema}) holds no wfrun state yet" \
        in empty.stderr, empty
    PostgresStore(url).create(make_run("r01", "2026-01-02T00:00:00.000Z"))
    shown = wfrun(project(tmp_path), url, "show", "nosuch")
    assert shown.code == 4, shown
    assert shown.stderr.startswith(f"error: no run nosuch in {database}"), shown.stderr
    assert shown.stderr.rstrip().endswith(f" (schema {schema})"), shown.stderr
    doctor = wfrun(tmp_path, url, "doctor")
    assert doctor.code == 0, doctor
    assert doctor.stdout == f"checked 1 run(s) in {address(url)} (schema {schema}): no problems\n"


def test_state_copy_conflicts_name_the_schema(url: str, tmp_path: Path) -> None:
    with _pg.schema() as other:
        theirs = make_run("r01", "2026-01-02T00:00:00.000Z")
        theirs.input = {"n": 2}
        for where, run in ((url, make_run("r01", "2026-01-02T00:00:00.000Z")), (other, theirs)):
            PostgresStore(where).create(run)
        PostgresStore(other).adopt_secret_key(PostgresStore(url).secret_key())
        conflict = wfrun(tmp_path, url, "state", "copy", url, other)
        assert conflict.code == 3, conflict
        assert "run r01 exists already in database '" in conflict.stderr
        assert f" (schema {schema_of(other)}) with " in conflict.stderr, conflict.stderr

        sql(other, "DELETE FROM wfrun_keys")
        PostgresStore(other).close()
        PostgresStore(other).secret_key()  # another key
        keys = wfrun(tmp_path, url, "state", "copy", url, other)
        assert keys.code == 3, keys
        assert (f"the URL signing key in database '{address(other).rpartition('/')[2]}' on "
                in keys.stderr)
        assert f" (schema {schema_of(other)}, table wfrun_keys) differs" in keys.stderr, keys


def test_the_public_schema_is_not_named(url: str) -> None:
    from wfrun.store.postgres import _connect

    store = PostgresStore(url)
    store.exists("r01")  # connected
    server = _connect.server(url)
    assert store._describe("r01") == f"{address(url)} (schema {server.schema}) run r01"
    own, server.schema = server.schema, "public"  # (as if the URL chose no schema)
    try:
        assert store._describe("r01") == f"{address(url)} run r01"
    finally:
        server.schema = own


# -- 2: a search_path naming no schema: a missing store for list, pending and tick -------------

@pytest.fixture
def missing(url: str) -> str:
    """A store URL whose search_path names a schema that does not exist."""
    gone = url.replace("search_path%3D", "search_path%3Dwfrun_no_such_")
    assert gone != url
    return gone


@pytest.mark.parametrize(("args", "empty"), [
    (["list"], "no runs"), (["list", "--json"], []),
    (["pending"], "nothing is waiting"), (["pending", "--json"], []),
    (["tick"], ""), (["tick", "--json"], {"advanced": [], "errors": []}),
])
def test_list_pending_and_tick_warn_and_exit_0(
        missing: str, tmp_path: Path, args: list[str], empty: Any) -> None:
    out = wfrun(project(tmp_path), missing, *args)
    assert out.code == 0, out
    assert "Traceback" not in out.stderr
    [warning] = out.stderr.splitlines()  # one line, as of a state directory that does not exist
    assert warning.startswith("warning: no schema of search_path") and "wfrun_no_such_" in warning
    assert f"in database '{address(missing).rpartition('/')[2]}' on " in warning
    if isinstance(empty, str):
        assert empty in out.stdout if empty else out.stdout == ""
    else:
        assert json.loads(out.stdout) == empty


def test_commands_that_need_a_run_or_write_still_exit_5(missing: str, tmp_path: Path) -> None:
    project(tmp_path)
    for args in (["show", "r01"], ["cancel", "r01"], ["start", "hello"], ["doctor"]):
        out = wfrun(tmp_path, missing, *args)
        assert out.code == 5, (args, out)
        assert out.stderr.startswith("error: no schema of search_path"), (args, out.stderr)
        assert "Traceback" not in out.stderr


def test_the_store_says_it_is_missing_and_the_cli_reads_that_as_empty(missing: str) -> None:
    # the store raises (it prints nothing: the command line says it); list, pending and tick
    # catch it as they would a state directory that does not exist
    store = PostgresStore(missing)
    try:
        for read in (lambda: store.find_runs(), lambda: store.pending(),
                     lambda: store.due("2099-01-01T00:00:00.000Z"),
                     lambda: store.acquire_due("2099-01-01T00:00:00.000Z")):
            with pytest.raises(StoreMissing, match="no schema of search_path"):
                read()
    finally:
        store.close()


def test_a_first_schema_that_does_not_exist_is_not_skipped_for_the_next(
        url: str, tmp_path: Path) -> None:
    # PostgreSQL would use the next schema of the search_path (here the test's own; usually
    # public): wfrun says the first is missing instead of keeping its tables in another one
    schema = schema_of(url)
    first = url.replace("search_path%3D", "search_path%3Dwfrun_no_such_")
    fallback = first.replace(f"search_path%3Dwfrun_no_such_{schema}",
                             f"search_path%3Dwfrun_no_such_{schema}%2C{schema}")
    assert fallback != first
    said = (f"schema wfrun_no_such_{schema}, the first of search_path 'wfrun_no_such_{schema},"
            f"{schema}', does not exist in database ")
    project(tmp_path)
    out = wfrun(tmp_path, fallback, "list")
    assert out.code == 0 and out.stdout.startswith("no runs"), out
    [warning] = out.stderr.splitlines()
    assert warning.startswith(f"warning: {said}") and f"(CREATE SCHEMA wfrun_no_such_{schema})" \
        in warning, warning
    for args in (["start", "hello"], ["doctor"]):
        out = wfrun(tmp_path, fallback, *args)
        assert out.code == 5 and out.stderr.startswith(f"error: {said}"), (args, out)
    assert sql_rows(url, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                         "c.relnamespace WHERE n.nspname = current_schema()") == [(0,)]


def sql_rows(url: str, query: str) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(query).fetchall()


# -- 3: a URL parameter libpq or psycopg refuses: a usage error naming it -------------------------

def _with(parameter: str) -> str:
    base = _pg.server_url()
    return f"{base}{'&' if '?' in base else '?'}{parameter}"


@pytest.mark.parametrize(("parameter", "name"), [
    ("connect_timeout=x", "connect_timeout"),  # psycopg's own: before any connection
    ("sslmode=bogus", "sslmode"),  # libpq's: before it tries the server
    ("keepalives=x", "keepalives"),
])
def test_a_bad_url_parameter_is_a_usage_error(tmp_path: Path, parameter: str, name: str) -> None:
    project(tmp_path)
    for args in (["list"], ["tick"], ["show", "r01"]):
        out = wfrun(tmp_path, _with(parameter), *args)
        assert out.code == 2, (args, out)
        [line] = out.stderr.splitlines()
        assert line.startswith("error: store URL ") and "bad parameter: " in line, line
        assert name in line and "cannot connect" not in line, line
    assert not (tmp_path / ".wfstate").exists()


@pytest.mark.parametrize("port", ["notaport", "99999", "-1"])
def test_a_bad_port_after_the_host_is_a_usage_error(tmp_path: Path, port: str) -> None:
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(_pg.server_url())
    url = f"postgresql://{info.get('user', 'postgres')}@{info['host']}:{port}/{info['dbname']}"
    project(tmp_path)
    for args in (["list"], ["start", "hello"], ["tick"]):
        out = wfrun(tmp_path, url, *args)
        assert out.code == 2, (args, out)
        [line] = out.stderr.splitlines()
        assert line.startswith(f"error: store URL {url!r} has a bad parameter: "), line
        assert "port" in line.partition("bad parameter: ")[2] and f'"{port}"' in line, line
        assert "cannot connect" not in line and "server is running" not in line, line


def test_the_store_refuses_a_bad_connect_timeout_before_connecting() -> None:
    bad = "postgresql://postgres@127.0.0.1:1/test?connect_timeout=soon"  # nothing listens there
    with pytest.raises(UsageError, match="connect_timeout") as caught:
        PostgresStore(bad)
    assert "cannot connect" not in caught.value.message
