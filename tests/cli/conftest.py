"""Fixtures of the command-line tests beyond tests/conftest.py's."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import _pg
import pytest


@pytest.fixture(params=["file", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path,
              monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A store URL: a file store's directory, or a PostgreSQL schema of the test's own."""
    for name in [n for n in os.environ if n.startswith("WFRUN_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("NO_COLOR", "1")
    if request.param == "file":
        yield str(tmp_path / "state")
    else:
        with _pg.schema() as url:
            yield url
