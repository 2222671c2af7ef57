"""Which threads are wfrun's own: a command's, a server's connection and worker threads.

While a step executes, `sys.stdout` and `sys.stderr` route what is written to that step's
output (`wfrun.engine._capture`); a thread marked here is never taken for a thread the step
started, so what it writes outside a step of its own stays its own."""

from __future__ import annotations

import threading

_own = threading.local()


def own_thread() -> None:
    """Mark the calling thread as one of wfrun's own."""
    _own.marked = True


def is_own_thread() -> bool:
    """True if the calling thread was marked with `own_thread`."""
    return getattr(_own, "marked", False)
