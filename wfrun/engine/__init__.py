"""The engine package: `Engine` runs workflows; its helpers are private modules."""

from wfrun.engine.core import Engine, Result, TickReport

__all__ = ["Engine", "Result", "TickReport"]
