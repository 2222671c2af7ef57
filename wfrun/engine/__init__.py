"""The engine package: `Engine` runs workflows; its helpers are private modules."""

from wfrun.engine.core import Engine, Result

__all__ = ["Engine", "Result"]
