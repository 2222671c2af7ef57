"""`open_store(url)`: the store a URL names (`file:PATH`, a bare path, `postgresql://...`).

Only the store a URL names is imported: a command on the file store never loads the
PostgreSQL driver.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from wfrun.store._urls import store_kind

if TYPE_CHECKING:
    from wfrun.store.abc import Store


def open_store(url: str) -> Store:
    """The store a URL names: `file:PATH` or a bare path is a FileStore, `postgresql://...` a
    PostgresStore (nothing is read or connected until the store is used)."""
    kind, where = store_kind(url)
    if kind == "file":
        from wfrun.store.file import FileStore

        return FileStore(where)
    from wfrun.store.postgres import PostgresStore

    return PostgresStore(where)
