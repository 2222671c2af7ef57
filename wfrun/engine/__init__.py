"""The engine package: `Engine` runs workflows; its helpers are private modules."""

from wfrun.engine.core import Decoy, Engine, OpenLink, Result

__all__ = ["Decoy", "Engine", "OpenLink", "Result"]
