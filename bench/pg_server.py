"""The PostgreSQL server as bench/pg.py measures it: its own databases, exact commit counts, the
commit floor, and the URLs that pick a database and a schema.

Commits are counted from `pg_stat_database.xact_commit` of a database only the benchmark uses
(read-only transactions and each connection's start count too). A backend reports its counts
when it exits (or at most once a second while idle), so a count is read only once no backend
is connected to that database; the reading connection is on another database.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg

FLOOR_ROW = "x" * 2048  # the floor's row: about the size of a 10-step run's snapshot


def with_database(url: str, database: str, schema: str | None = None,
                  settings: Sequence[str] = ()) -> str:
    """`url` on another database, with `options=-csearch_path=SCHEMA` and `-cNAME=VALUE`
    settings (libpq's way to set them for a connection) when given."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    options = [f"-csearch_path={schema}"] if schema else []
    options += [f"-c{setting}" for setting in settings]
    if options:
        query.append(("options", " ".join(options)))
    return urlunsplit(parts._replace(path=f"/{database}", query=urlencode(query, quote_via=quote)))


def without_options(url: str) -> str:
    """`url` without its `options` (a database URL as DBOS takes it)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


class Server:
    """One PostgreSQL server: the databases the benchmark makes on it, and what it counts."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.admin = psycopg.connect(url, autocommit=True, connect_timeout=10)
        self.label = secrets.token_hex(4)
        self.databases: list[str] = []
        self._floor: psycopg.Connection[Any] | None = None

    def settings(self) -> dict[str, Any]:
        """The server's version and the settings a commit's cost depends on."""
        got: dict[str, Any] = {"version": self.one("SHOW server_version")}
        for name in ("synchronous_commit", "fsync", "wal_sync_method", "full_page_writes",
                     "commit_delay", "shared_buffers"):
            got[name] = self.one(f"SHOW {name}")
        return got

    def one(self, query: str, params: Sequence[Any] = ()) -> Any:
        """The first column of the first row of a query on the admin connection."""
        row = self.admin.execute(query, list(params)).fetchone()
        return None if row is None else row[0]

    def create_database(self, suffix: str) -> str:
        """A new empty database, dropped by `close`; its name."""
        name = f"wfrun_bench_{self.label}_{suffix}"
        self.admin.execute(f'CREATE DATABASE "{name}"')
        self.databases.append(name)
        return name

    def database_url(self, database: str, schema: str | None = None,
                     settings: Sequence[str] = ()) -> str:
        """The URL of a database of this server (and a schema of it)."""
        return with_database(self.url, database, schema, settings)

    def create_schema(self, database: str, schema: str) -> str:
        """A new schema in one of the benchmark's databases; the URL that uses it."""
        with psycopg.connect(self.database_url(database), autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{schema}"')
        return self.database_url(database, schema)

    def drop_schema(self, database: str, schema: str) -> None:
        """Drop a schema made by `create_schema`, with what it holds."""
        with psycopg.connect(self.database_url(database), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

    def wait_idle(self, database: str, timeout: float = 60.0) -> None:
        """Wait until no backend is connected to `database` (each has reported its counts)."""
        deadline = time.monotonic() + timeout
        while self.one("SELECT count(*) FROM pg_stat_activity WHERE datname = %s", [database]):
            if time.monotonic() > deadline:
                raise RuntimeError(f"backends still connected to {database} after {timeout} s")
            time.sleep(0.02)

    def commits(self, database: str) -> int:
        """`xact_commit` of `database`, once every backend connected to it has exited."""
        self.wait_idle(database)
        return int(self.one("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                            [database]))

    def floor(self, count: int) -> list[float]:
        """`count` single-row durable commits, in seconds: each an INSERT of a 2 KB row in a
        transaction of its own (autocommit: one round trip, a prepared statement once warm),
        synchronous_commit as the server has it. In a database of their own, on one connection
        kept open, so that they count in no measured database."""
        if self._floor is None:
            name = self.create_database("floor")
            self._floor = psycopg.connect(self.database_url(name), autocommit=True)
            self._floor.execute("CREATE TABLE commits "
                                "(id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL)")
            for _ in range(20):  # warm: the statement prepared, the table's pages in memory
                self._floor.execute("INSERT INTO commits (v) VALUES (%s)", [FLOOR_ROW])
        times = []
        for _ in range(count):
            t0 = time.perf_counter()
            self._floor.execute("INSERT INTO commits (v) VALUES (%s)", [FLOOR_ROW])
            times.append(time.perf_counter() - t0)
        return times

    def close(self) -> None:
        """Drop the benchmark's databases (ending what is still connected to them)."""
        if self._floor is not None:
            self._floor.close()
        for name in reversed(self.databases):
            self.admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.databases.clear()
        self.admin.close()
