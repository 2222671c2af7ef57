"""File descriptor 1 while a command executes steps or imports step modules (`validate`,
`token create`): stderr's. A step's subprocess, a module's `os.system` at import, or a C
library, writing straight to descriptor 1 cannot then break `--json` (one document on
stdout, nothing else); wfrun's own output reaches the command's stdout through a copy of the
descriptor, which is put back when the command ends."""

import contextlib
import os
import sys
from typing import Any

_kept: list[tuple[Any, Any]] = []  # (the sys.stdout replaced, the stream on the copy)


def divert() -> None:
    """Point descriptor 1 at stderr and sys.stdout at a copy of the original descriptor 1;
    only when sys.stdout writes to descriptor 1 (not under a test runner's capture), and
    once per command (`restore` undoes it)."""
    out = sys.stdout
    if _kept or out is None:
        return
    try:
        if out.fileno() != 1:
            return
        out.flush()
    except (AttributeError, OSError, ValueError):  # no descriptor (io.UnsupportedOperation)
        return
    copy = os.dup(1)  # not inherited by a step's subprocesses
    os.dup2(2, 1)
    line_buffered = bool(getattr(out, "line_buffering", False))  # a terminal's is
    sys.stdout = os.fdopen(copy, "w", buffering=1 if line_buffered else -1,
                           encoding=out.encoding, errors=out.errors)
    _kept.append((out, sys.stdout))


def restore() -> None:
    """Put descriptor 1 and sys.stdout back as `divert` found them."""
    while _kept:
        original, stream = _kept.pop()
        with contextlib.suppress(OSError, ValueError):  # a closed pipe: lost either way
            stream.flush()
        os.dup2(stream.fileno(), 1)
        stream.close()
        sys.stdout = original


CLOSED_PIPE_EXIT = 141  # 128 + SIGPIPE: what a shell tool killed by SIGPIPE exits with


def reader_gone() -> int:
    """stdout's reader went away (`wfrun show RUN | head -1`): what is still buffered for it
    goes nowhere, so that flushing at exit raises no second BrokenPipeError; the exit code to
    use, not 1 (which says a run failed)."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return CLOSED_PIPE_EXIT
