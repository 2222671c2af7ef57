"""wfrun: a command-line durable workflow runner with local file state.

Step authors import from here only: `Context` (what a step receives), its `Flow`, `Links` and
the errors (their tests catch them: see docs/testing.md). Nothing here imports the engine.
"""

from wfrun.context import Context, RunInfo, StepExports
from wfrun.errors import (
    ConflictError,
    FlowError,
    ManifestError,
    NotFoundError,
    SchemaViolation,
    StateError,
    UsageError,
    WfrunError,
)
from wfrun.flow import Flow, Links

__version__ = "0.1.0"

__all__ = [
    "ConflictError", "Context", "Flow", "FlowError", "Links", "ManifestError", "NotFoundError",
    "RunInfo", "SchemaViolation", "StateError", "StepExports", "UsageError", "WfrunError",
    "__version__",
]
