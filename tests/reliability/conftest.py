"""Fixtures of the reliability suite: a warm `wfrun` launcher and a lab of workflows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ._relutil import Lab, Warm


@pytest.fixture(scope="session")
def warm() -> Iterator[Warm]:
    """One pre-imported launcher for the whole session (each command is still its own process)."""
    launcher = Warm()
    yield launcher
    launcher.close()


@pytest.fixture(scope="session")
def warm_pool(warm: Warm) -> Iterator[list[Warm]]:
    """Two launchers, for tests that drive commands from two threads (two CPU cores)."""
    second = Warm()
    yield [warm, second]
    second.close()


@pytest.fixture
def lab(tmp_path: Path, warm: Warm) -> Lab:
    return Lab(tmp_path, warm)
