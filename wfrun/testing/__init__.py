"""Test your workflows with pytest: `Harness` drives the engine with a fake clock, no sleeping.

The pytest plugin (`wfrun.testing.plugin`, loaded automatically once wfrun is installed) gives
each test a `wfrun_harness` fixture. Importing this package is cheap: the engine is loaded on
first use of `Harness`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from wfrun.testing._harness import DEFAULT_START, Harness

__all__ = ["DEFAULT_START", "Harness"]


def __getattr__(name: str) -> Any:
    """Load the harness lazily, so that loading the pytest plugin costs next to nothing."""
    if name in __all__:
        from wfrun.testing import _harness

        return getattr(_harness, name)
    raise AttributeError(f"module 'wfrun.testing' has no attribute {name!r}")
