"""A PostgreSQL user without the privileges wfrun needs on its schema is told what is wrong and
what to grant, in one sentence (exit 5): no USAGE on a schema that exists (not "no schema
exists"), no CREATE on a schema where wfrun's tables are still to be made (not "refused a
query", and not doctor's "holds no wfrun state yet"), tables another user owns to migrate,
no rights on the tables and sequences another user made (not "permission denied for table"),
and no USAGE on the first schema of a search_path that names others after it (not its tables
made and used in the next one, as PostgreSQL's search_path would have it)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import _pg
import pytest
from conftest import Outcome

from ._pgcli import project, schema_of, sql, wfrun


@pytest.fixture
def url() -> Iterator[str]:
    with _pg.schema() as schema_url:
        yield schema_url


@pytest.fixture
def role(url: str) -> Iterator[str]:
    """A new login role with no privileges, dropped afterwards."""
    import psycopg

    name = f"wfrun_test_role_{secrets.token_hex(4)}"
    sql(_pg.server_url(), f"CREATE ROLE {name} LOGIN")
    try:
        try:
            psycopg.connect(as_role(url, name), connect_timeout=5).close()
        except psycopg.Error as exc:
            pytest.skip(f"the test server does not let a new role log in: {exc}")
        yield name
    finally:
        sql(_pg.server_url(), f"DROP OWNED BY {name}", f"DROP ROLE {name}")


def as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=f"{role}@{parts.netloc.rpartition('@')[2]}"))








COMMANDS = (["list"], ["start", "hello"], ["tick"], ["doctor"], ["show", "r01"])


def said_once(out: Outcome, args: list[str]) -> str:
    assert out.code == 5, (args, out)
    assert "Traceback" not in out.stderr and "refused a query" not in out.stderr, out.stderr
    [line] = out.stderr.splitlines()
    return line


def test_no_usage_on_a_schema_that_exists(url: str, role: str, tmp_path: Path) -> None:
    schema = schema_of(url)
    project(tmp_path)
    for args in COMMANDS:
        line = said_once(wfrun(tmp_path, as_role(url, role), *args), args)
        assert line.startswith(f"error: user {role} may not use schema {schema} of "), line
        assert "no schema of search_path" not in line
        assert f"(GRANT USAGE, CREATE ON SCHEMA {schema} TO {role})" in line, line


def test_no_create_on_a_schema_without_wfrun_tables(url: str, role: str, tmp_path: Path) -> None:
    schema = schema_of(url)
    sql(url, f"GRANT USAGE ON SCHEMA {schema} TO {role}")
    project(tmp_path)
    for args in COMMANDS:
        line = said_once(wfrun(tmp_path, as_role(url, role), *args), args)
        assert line.startswith(f"error: user {role} may not create wfrun's tables in schema "
                               f"{schema} of "), line
        assert f"(GRANT USAGE, CREATE ON SCHEMA {schema} TO {role})" in line, line
        assert "holds no wfrun state" not in line

    sql(url, f"GRANT CREATE ON SCHEMA {schema} TO {role}")  # as the sentence says
    assert wfrun(tmp_path, as_role(url, role), "start", "hello").code == 0


def test_tables_another_user_owns_cannot_be_migrated(url: str, role: str, tmp_path: Path) -> None:
    from wfrun.store.postgres import PostgresStore, _schema

    store = PostgresStore(url)
    store.exists("r01")  # the tables, made by the test server's user
    store.close()
    schema = schema_of(url)
    sql(url, f"DELETE FROM wfrun_schema WHERE version = {_schema.VERSION}",  # one to apply
        f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}",
        f"GRANT SELECT ON wfrun_schema TO {role}")
    line = said_once(wfrun(project(tmp_path), as_role(url, role), "list"), ["list"])
    assert line.startswith(f"error: user {role} may not migrate wfrun's tables in schema "
                           f"{schema} of "), line
    assert f"to version {_schema.VERSION} (" in line and "as the user who owns them" in line


def test_no_rights_on_tables_another_user_made(url: str, role: str, tmp_path: Path) -> None:
    from wfrun.store.postgres import PostgresStore

    store = PostgresStore(url)
    store.exists("r01")  # the tables, made by the test server's user
    store.close()
    schema = schema_of(url)
    sql(url, f"GRANT USAGE ON SCHEMA {schema} TO {role}")  # the schema, not its tables
    tables = f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO {role}"
    sequences = f"GRANT USAGE ON ALL SEQUENCES IN SCHEMA {schema} TO {role}"
    project(tmp_path)
    as_it = as_role(url, role)
    for args in COMMANDS:
        line = said_once(wfrun(tmp_path, as_it, *args), args)
        assert line.startswith(f"error: user {role} may not use table wfrun_schema in schema "
                               f"{schema} of database "), line
        assert f"(GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {schema} TO " \
               f"{role}; {sequences})" in line, line
        assert "permission denied" not in line

    sql(url, f"GRANT SELECT ON wfrun_schema TO {role}")  # the version table only: the next
    line = said_once(wfrun(tmp_path, as_it, "list"), ["list"])
    assert line.startswith(f"error: user {role} may not use table wfrun_runs in schema "), line
    sql(url, tables)  # the first GRANT alone: the claim's sequence is still refused
    line = said_once(wfrun(tmp_path, as_it, "start", "hello"), ["start", "hello"])
    assert line.startswith(f"error: user {role} may not use sequence wfrun_claim_tokens in "
                           f"schema {schema} of "), line
    sql(url, sequences)  # as the sentence says
    assert wfrun(tmp_path, as_it, "start", "hello").code == 0
    assert wfrun(tmp_path, as_it, "doctor").code == 0
    listed = wfrun(tmp_path, as_it, "list", "--json")
    assert [r["status"] for r in json.loads(listed.stdout)] == ["completed"], listed


def test_a_first_schema_the_user_may_not_use_is_not_skipped_for_the_next(
        url: str, role: str, tmp_path: Path) -> None:
    schema = schema_of(url)
    with _pg.schema() as other_url:  # the next schema of the path, where the role may create
        other = schema_of(other_url)
        sql(other_url, f"GRANT USAGE, CREATE ON SCHEMA {other} TO {role}")
        both = as_role(url, role).replace(f"search_path%3D{schema}",
                                          f"search_path%3D{schema}%2C{other}")
        project(tmp_path)
        for args in COMMANDS:
            line = said_once(wfrun(tmp_path, both, *args), args)
            assert line.startswith(f"error: user {role} may not use schema {schema} of "), line
            assert f"(the first of search_path '{schema},{other}')" in line, line
            assert f"(GRANT USAGE, CREATE ON SCHEMA {schema} TO {role})" in line, line
        with psycopg_connect(other_url) as conn:  # nothing was made in the next one
            assert conn.execute("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON "
                                "n.oid = c.relnamespace WHERE n.nspname = %s",
                                [other]).fetchone() == (0,)
        sql(url, f"GRANT USAGE, CREATE ON SCHEMA {schema} TO {role}")  # as the sentence says
        assert wfrun(tmp_path, both, "start", "hello").code == 0


def psycopg_connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)
