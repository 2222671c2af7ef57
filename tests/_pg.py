"""The PostgreSQL server tests use: `WFRUN_TEST_PG`, else the project's machines' own
(postgresql://postgres@127.0.0.1:5432/test, trust auth).

Each test gets a schema of its own (`schema()`), dropped afterwards. Without a server, the
tests that need one skip with the reason; under CI (`CI=true`) they fail instead (SPEC §10):
CI must not go green without having run them.
"""

from __future__ import annotations

import functools
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


def server_url() -> str:
    """The URL of the test server."""
    return os.environ.get("WFRUN_TEST_PG") or DEFAULT_URL


@functools.cache
def _unavailable() -> str | None:
    """Why no test server can be used (None: it answers)."""
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed (pip install -e '.[dev]')"
    try:
        with psycopg.connect(server_url(), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {server_url()} ({str(exc).strip().splitlines()[0]})"
    return None


def require() -> None:
    """Skip the calling test when no server answers; fail it under CI."""
    reason = _unavailable()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests (set WFRUN_TEST_PG to another "
                    "server's URL)", pytrace=False)
    pytest.skip(f"{reason}; set WFRUN_TEST_PG to run the PostgreSQL tests")


def with_search_path(url: str, schema: str) -> str:
    """`url` with `options=-csearch_path=SCHEMA` (libpq's way to choose the schema)."""
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@contextmanager
def schema() -> Iterator[str]:
    """A store URL on a new, empty schema of the test server, dropped on exit."""
    import psycopg

    require()
    name = f"wfrun_test_{secrets.token_hex(6)}"
    with psycopg.connect(server_url(), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"')
    url = with_search_path(server_url(), name)
    try:
        yield url
    finally:
        from wfrun.store.postgres import _connect

        for opened in [u for u in _connect._SERVERS if name in u]:
            _connect.close(opened)  # this process's connections to it (under any URL)
        with psycopg.connect(server_url(), autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE')
