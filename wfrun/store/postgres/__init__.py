"""The PostgreSQL store (`postgresql://...` store URLs); needs `pip install 'wfrun[postgres]'`."""

from __future__ import annotations

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    from wfrun.errors import StateError

    raise StateError(
        f"the PostgreSQL store needs the psycopg driver ({exc.name} is not installed); install "
        "it with: pip install 'wfrun[postgres]'") from None

from wfrun.store.postgres.store import PostgresStore

__all__ = ["PostgresStore"]
