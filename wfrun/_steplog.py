"""The logger behind `ctx.log` (imported only when a step logs, to keep start-up cheap)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any


class _Collector(logging.Handler):
    """Keeps the records a step logs, for the run's history."""

    def __init__(self, records: list[dict[str, Any]],
                 forward: Callable[[dict[str, Any]], None] | None = None) -> None:
        super().__init__(logging.DEBUG)
        self.records = records
        self.forward = forward

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not fail the step
            message = str(record.msg)
        if not message.isascii():  # a lone surrogate: kept escaped, as UTF-8 can store it
            message = message.encode("utf-8", "backslashreplace").decode("utf-8")
        self.records.append({"level": record.levelname.lower(), "message": message})
        if self.forward is not None:
            self.forward(self.records[-1])


def step_logger(name: str, records: list[dict[str, Any]],
                forward: Callable[[dict[str, Any]], None] | None = None) -> logging.Logger:
    """An unregistered logger (not kept forever by logging's manager) that appends to `records`
    (and hands each record to `forward`, the engine's output capture, if given)."""
    logger = logging.Logger(name, logging.DEBUG)
    logger.addHandler(_Collector(records, forward))
    return logger
