"""How the PostgreSQL store words a driver's error in its one-sentence messages."""

from __future__ import annotations

import pytest

pytest.importorskip("psycopg")

from wfrun.store.postgres._failures import reason_of, where_of


@pytest.mark.parametrize(("text", "reason"), [
    ('connection failed: FATAL:  database "x" does not exist', 'database "x" does not exist'),
    ("server closed the connection unexpectedly.", "server closed the connection unexpectedly"),
    # libpq's words after a cut connection with a pipeline in flight say what happened instead
    ("cannot exit pipeline mode while busy", "the connection was cut while a transaction was in flight"),
])
def test_reasons_are_short_and_say_what_happened(text: str, reason: str) -> None:
    assert reason_of(Exception(text)) == reason


def test_where_names_what_libpq_uses_for_what_the_url_leaves_out(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr("getpass.getuser", lambda: "ann")
    assert where_of({}) == "database 'ann' on the local socket (default) port 5432"
    monkeypatch.setenv("PGDATABASE", "app")
    monkeypatch.setenv("PGHOST", "db.internal")
    assert where_of({"port": "6432"}) == "database 'app' on db.internal:6432"
    assert where_of({"host": "h", "dbname": "d"}) == "database 'd' on h:5432"
