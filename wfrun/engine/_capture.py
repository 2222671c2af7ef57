"""Capturing what a step prints (sys.stdout, sys.stderr) and logs (ctx.log), line by line.

Each line becomes a record `{"at", "step", "runs", "stream", "text"}` (`stream` is `stdout`,
`stderr` or `log`; log records also carry `level`) handed to a sink as soon as it is complete,
so `wfrun logs --follow` shows a long step's output while it runs. What the step writes is still
echoed to the executing command's stderr (stdout belongs to wfrun's own output, `--json`).

Only Python-level writes are seen: a subprocess or C library writing straight to file
descriptors 1 or 2 is echoed by the terminal as usual but not kept.
"""

from __future__ import annotations

import contextlib
import io
import sys
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any, TextIO

from wfrun.durations import to_iso

MAX_LINE = 16_384  # longer lines are kept in pieces of this many characters

Sink = Callable[[list[dict[str, Any]]], None]


class StepOutput:
    """A context manager that routes sys.stdout/sys.stderr through line-splitting tees."""

    def __init__(self, step: str, runs: int, now: Callable[[], datetime], sink: Sink | None):
        self.step = step
        self.runs = runs
        self._now = now
        self._sink = sink
        self._lock = threading.RLock()
        self._saved: tuple[TextIO, TextIO] | None = None
        self._tees: list[_Tee] = []
        self.records: list[dict[str, Any]] = []  # kept here when there is no sink
        self.broken: str | None = None  # why the sink stopped taking records, if it did

    def __enter__(self) -> StepOutput:
        self._saved = (sys.stdout, sys.stderr)
        echo = sys.stderr
        self._tees = [_Tee(self, "stdout", echo), _Tee(self, "stderr", echo)]
        sys.stdout, sys.stderr = self._tees
        return self

    def __exit__(self, *exc: object) -> None:
        for tee in self._tees:
            tee.finish()
        if self._saved is not None:
            sys.stdout, sys.stderr = self._saved
            self._saved = None

    def log(self, record: dict[str, Any]) -> None:
        """Keep a `ctx.log` record (`{"level", "message"}`), one record per line of message."""
        for line in str(record.get("message", "")).splitlines() or [""]:
            self.emit("log", line, level=record.get("level", "info"))

    def emit(self, stream: str, text: str, **extra: Any) -> None:
        """Keep one line of output."""
        record = {"at": to_iso(self._now()), "step": self.step, "runs": self.runs,
                  "stream": stream, "text": text, **extra}
        with self._lock:
            if self._sink is None:
                self.records.append(record)
                return
            if self.broken is not None:
                return
            try:
                self._sink([record])
            except Exception as exc:  # a full disk must not fail the step: its output is not state
                self.broken = f"{type(exc).__name__}: {exc}"


class _Tee(io.TextIOBase):
    """A text stream that echoes every write and hands each complete line to its StepOutput."""

    def __init__(self, owner: StepOutput, stream: str, echo: TextIO) -> None:
        super().__init__()
        self._owner = owner
        self._stream = stream
        self._echo = echo
        self._partial = ""

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._echo, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._echo, "errors", None)

    @property
    def buffer(self) -> Any:
        """The echo's binary buffer: bytes written there are echoed but not kept."""
        return self._echo.buffer

    def __getattr__(self, name: str) -> Any:  # line_buffering, reconfigure, ...: the echo's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._echo, name)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._echo.fileno()  # writes through the descriptor are echoed, not kept

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._owner._lock:
            self._echo.write(text)
            buffered = self._partial + text
            *lines, self._partial = buffered.split("\n")
            for line in lines:
                self._keep(line)
            while len(self._partial) > MAX_LINE:
                self._keep(self._partial[:MAX_LINE])
                self._partial = self._partial[MAX_LINE:]
        return len(text)

    def _keep(self, line: str) -> None:
        for start in range(0, max(len(line), 1), MAX_LINE):
            self._owner.emit(self._stream, line[start:start + MAX_LINE].rstrip("\r"))

    def flush(self) -> None:
        self._echo.flush()

    def finish(self) -> None:
        """Keep a last line that had no newline."""
        with self._owner._lock:
            if self._partial:
                self._keep(self._partial)
                self._partial = ""
        with contextlib.suppress(OSError, ValueError):
            self._echo.flush()
