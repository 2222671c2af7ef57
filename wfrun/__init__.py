"""wfrun: a command-line durable workflow runner with local file state.

Step authors import from here only: `Context` (what a step receives), `Links` and the errors.
"""

from wfrun.context import Context, Links, RunInfo, StepExports
from wfrun.errors import FlowError, WfrunError

__version__ = "0.1.0"

__all__ = ["Context", "FlowError", "Links", "RunInfo", "StepExports", "WfrunError", "__version__"]
