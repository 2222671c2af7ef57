"""A run's stored state damaged by hand, on the file store or on PostgreSQL (the `store_url`
fixture, tests/cli/conftest.py, gives either)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

HELLO = '{"hello": 1}'


def damage(store: str, run_id: str) -> Callable[[], Any]:
    """Write `{"hello": 1}` over the run's stored state, as a hand edit would; a function
    reading what is stored for it (on PostgreSQL with its revision and the leases held)."""
    if "://" not in store:
        path = Path(store) / "runs" / f"{run_id}.json"
        path.write_text(HELLO)
        return lambda: path.read_text()
    import psycopg

    def stored() -> Any:
        with psycopg.connect(store, autocommit=True) as conn:
            row = conn.execute("SELECT snapshot::text, revision FROM wfrun_runs "
                               "WHERE run_id = %s", [run_id]).fetchone()
            claims = conn.execute("SELECT count(*) FROM wfrun_claims").fetchone()
        return row, claims

    with psycopg.connect(store, autocommit=True) as conn:
        conn.execute("UPDATE wfrun_runs SET snapshot = %s WHERE run_id = %s", [HELLO, run_id])
    return stored
