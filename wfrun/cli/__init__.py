"""The `wfrun` command line (typer and rich live only in this package)."""

from __future__ import annotations

from . import _doctor, _init, _logs, _ops, _runs  # noqa: F401  (they register the commands)
from ._app import app


def main() -> None:
    """Entry point of the `wfrun` console script and `python -m wfrun`."""
    app()


__all__ = ["app", "main"]
