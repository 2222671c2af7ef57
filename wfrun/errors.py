"""The one exception hierarchy of wfrun; every class carries the exit code of SPEC §5.

    WfrunError                      exit 1  (base; never raised directly)
    ├── UsageError                  exit 2  bad input: JSON, schema, run id, payload size
    │   ├── ManifestError           exit 2  invalid manifest or step module (names file, step, key)
    │   ├── SchemaViolation         exit 2  data does not match a JSON Schema (gives JSON paths)
    │   └── CodeChangedError        exit 2  the step to continue no longer exists in the workflow
    ├── ConflictError               exit 3  run finished, step not suspended, already resumed, busy
    ├── NotFoundError               exit 4  no such run, workflow or step
    └── StateError                  exit 5  unreadable or unverifiable snapshot, disk full, I/O error

`FlowError` is different: it is raised inside step code when the flow API is misused (two
pause calls in one execution) and fails that step like any other exception.
"""

from __future__ import annotations

import re


class WfrunError(Exception):
    """Base of every error wfrun reports to a user; `exit_code` is the process exit code."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class UsageError(WfrunError):
    """Invalid input or usage: bad JSON, bad run id, payload too large."""

    exit_code = 2


class ManifestError(UsageError):
    """A workflow manifest or its module is invalid."""


class SchemaViolation(UsageError):
    """Data does not match the JSON Schema it must follow."""

    def __init__(self, message: str, errors: list[dict[str, str]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class CodeChangedError(UsageError):
    """The workflow changed so much that the step to continue no longer exists."""


class ConflictError(WfrunError):
    """The request conflicts with the run's state (finished, not suspended, busy, exists)."""

    exit_code = 3


class ClaimLost(ConflictError):
    """Another process took the run over from this one (its lease ran out while it executed a
    step): the change this process was saving was not saved; the other process goes on.

    Its message begins with `taken_over(run_id)` and says the fact only: the command that
    prints it (or a warning made of it) adds how to look at the run (`TAKEN_OVER` finds it),
    with the options that reach this store."""

    @staticmethod
    def taken_over(run_id: str) -> str:
        """How the message of a ClaimLost for run `run_id` begins."""
        return f"run {run_id} was taken over by another process"


# finds `ClaimLost.taken_over(RUN)` in a message (a warning is only its text), RUN in group 1
TAKEN_OVER = re.compile(r"\brun ([A-Za-z0-9_-]{1,64}) was taken over by another process\b")


class LeftoverRecords(ConflictError):
    """A run cannot be created under its id: the history or logs of an earlier run of that id,
    whose state was removed by hand, are still kept (`wfrun doctor` notes them), and a new run
    must not take them as its own. The message says how to remove them."""


class NotFoundError(WfrunError):
    """No such run, workflow or step."""

    exit_code = 4


class StateError(WfrunError):
    """The state directory cannot be read or written; the message names the file."""

    exit_code = 5


class StoreMissing(StateError):
    """The store's place does not exist (a PostgreSQL search_path naming no schema, or whose
    first schema does not exist): it holds no run. Commands that read across runs (`list`,
    `pending`, `tick`) say so and find nothing, as for a state directory that does not exist;
    the others fail (exit 5)."""


class StoreUnavailable(StateError):
    """The store cannot be reached for the moment (its database server is down or restarting,
    the connection was cut, no connection came free): the same request may succeed shortly."""


class Interrupted(KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM) asked the process to stop, raised by a signal handler marked
    `handler.raises_interrupted = True` (the command line installs such handlers while steps
    execute). Where one is installed, a KeyboardInterrupt that is not this one was raised by
    a step itself, and fails the step like any exception."""


def interrupts_are_marked() -> bool:
    """Whether this process's Ctrl-C raises `Interrupted` (see there)."""
    import signal

    return bool(getattr(signal.getsignal(signal.SIGINT), "raises_interrupted", False))


class FlowError(Exception):
    """Raised in step code that misuses the flow API; it fails the step."""
