"""The engine package: `Engine` runs workflows; its helpers are private modules."""

from wfrun.engine._capture import set_echo
from wfrun.engine.core import Decoy, Engine, OpenLink, Result

__all__ = ["Decoy", "Engine", "OpenLink", "Result", "set_echo"]
