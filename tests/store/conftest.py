"""Every contract test runs against the memory, file and PostgreSQL stores (tests/_stores.py):
`backend` is the storage, `open_store` opens another store object over it (as another process
would), `store` is one such object."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import _stores
import pytest

from wfrun.store.abc import Store


@pytest.fixture(params=_stores.KINDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[_stores.Backend]:
    """One store's storage, empty (a PostgreSQL schema of its own: skipped without a server,
    except under CI)."""
    with _stores.backend(request.param, tmp_path) as made:
        yield made


@pytest.fixture
def open_store(backend: _stores.Backend) -> Callable[[], Store]:
    """Opens a new store object over the same storage (as another process would)."""
    return backend.open


@pytest.fixture
def store(open_store: Callable[[], Store]) -> Store:
    """A store object over the backend's storage."""
    return open_store()
