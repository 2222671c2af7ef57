"""Capturing what a step prints (sys.stdout, sys.stderr) and logs (ctx.log), line by line.

Each line becomes a record `{"at", "step", "runs", "stream", "text"}` (`stream` is `stdout`,
`stderr`, `log` or `error`; log records also carry `level`) handed to a sink as soon as it is
complete, so `wfrun logs --follow` shows a long step's output while it runs. With `set_echo`
(`--verbose`), what the step writes and logs is also echoed to the executing command's stderr
as it happens (stdout belongs to wfrun's own output, `--json`); otherwise it is only kept.

While at least one step executes, sys.stdout and sys.stderr are routers that send each write
to the capture of the step executing in the writing thread (a context variable), so steps
executing at the same time in several threads of one process keep their own output. A thread
a step started itself has no capture of its own: its writes go to the only step executing,
or, with several, are echoed without being kept. A thread of wfrun's own (`wfrun._threads.own_thread`: the
command's, a server's connections and workers) is never a step's: outside a step of its own,
what it writes goes to the streams the routers replaced, as it would with no step executing.

A lone surrogate (`"\\udcff"`, as `surrogateescape` decoding leaves for a byte that is not
UTF-8) is valid in a Python str but cannot be stored as UTF-8: it is kept, and echoed, escaped
as `backslashreplace` writes it (the six characters `\\udcff`), never dropped.

Only Python-level writes are seen: a subprocess or C library writing straight to file
descriptors 1 or 2 (or to `sys.stdout.buffer`) is not kept (the command line points
descriptor 1 at stderr while steps execute: `wfrun.cli._stdout`).
"""

from __future__ import annotations

import io
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar, Token
from datetime import datetime
from typing import Any, TextIO

from wfrun._threads import is_own_thread
from wfrun.durations import to_iso
from wfrun.errors import WfrunError

MAX_LINE = 16_384  # longer lines are kept in pieces of this many characters

Sink = Callable[[list[dict[str, Any]]], None]

_lock = threading.RLock()
_active: list[StepOutput] = []
_saved: tuple[TextIO, TextIO] | None = None  # the streams the routers replaced
# the routers last installed, kept for the next step that echoes to the same stderr: building
# two text streams and finalizing them again at every step cost a few percent of a trivial one
_routers: tuple[TextIO, _Router, _Router] | None = None  # (echo, stdout's, stderr's)
_current: ContextVar[StepOutput | None] = ContextVar("wfrun_step_output", default=None)
_echoing = False  # echo what steps write and log to stderr (--verbose)


def storable(text: str) -> str:
    """`text` as UTF-8 can carry it: each lone surrogate escaped as `\\udcff`
    (`backslashreplace`), everything else as it is."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def set_echo(on: bool) -> None:
    """Echo what steps print and log (`ctx.log`) to stderr as it happens (`--verbose`), or
    only keep it for `wfrun logs` (the default)."""
    global _echoing
    _echoing = on


class StepOutput:
    """A context manager that keeps one step execution's output lines."""

    def __init__(self, step: str, runs: int, now: Callable[[], datetime], sink: Sink | None):
        self.step = step
        self.runs = runs
        self._now = now
        self._sink = sink
        self._partial = {"stdout": "", "stderr": ""}
        self._token: Token[StepOutput | None] | None = None
        self.records: list[dict[str, Any]] = []  # kept here when there is no sink
        self.broken: str | None = None  # why the sink stopped taking records, if it did

    def __enter__(self) -> StepOutput:
        global _saved
        with _lock:
            if not _active:
                _saved = (_unrouted(sys.stdout), _unrouted(sys.stderr))
                out, err = _routers_to(_saved[1])
                out.replaced, err.replaced = _saved
                sys.stdout, sys.stderr = out, err
            _active.append(self)
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        global _saved
        with _lock:
            for stream, text in self._partial.items():
                if text:
                    self._keep(stream, text)
                    self._partial[stream] = ""
            if self._token is not None:
                _current.reset(self._token)
                self._token = None
            if self in _active:
                _active.remove(self)
            if not _active and _saved is not None:
                if isinstance(sys.stdout, _Router):  # unless something replaced them meanwhile
                    sys.stdout = _saved[0]
                if isinstance(sys.stderr, _Router):
                    sys.stderr = _saved[1]
                _saved = None

    def feed(self, stream: str, text: str) -> None:
        """Take text written to `stream`; keep every line it completes."""
        with _lock:
            *lines, rest = (self._partial[stream] + text).split("\n")
            for line in lines:
                self._keep(stream, line)
            while len(rest) > MAX_LINE:
                self._keep(stream, rest[:MAX_LINE])
                rest = rest[MAX_LINE:]
            self._partial[stream] = rest

    def _keep(self, stream: str, line: str) -> None:
        line = storable(line)  # escaped before it is cut: no piece is over MAX_LINE
        for start in range(0, max(len(line), 1), MAX_LINE):
            self.emit(stream, line[start:start + MAX_LINE].rstrip("\r"))

    def log(self, record: dict[str, Any]) -> None:
        """Keep a `ctx.log` record (`{"level", "message"}`), one record per line of message;
        with echo on, also write it to stderr as `STEP  LEVEL  MESSAGE` (as `wfrun logs` does)."""
        level = record.get("level", "info")
        lines = storable(str(record.get("message", ""))).splitlines() or [""]
        for line in lines:
            self.emit("log", line, level=level)
        if _echoing:
            with _lock:
                stream = _saved[1] if _saved is not None else sys.stderr
                text = "".join(f"{self.step}  {level}  {line}\n" for line in lines)
                if _echo(stream, text):
                    _echo(stream, None)

    def emit(self, stream: str, text: str, **extra: Any) -> None:
        """Keep one line of output (a lone surrogate in it escaped: see `storable`)."""
        record = {"at": to_iso(self._now()), "step": self.step, "runs": self.runs,
                  "stream": stream, "text": storable(text), **extra}
        with _lock:
            if self._sink is None:
                self.records.append(record)
                return
            if self.broken is not None:
                return
            try:
                self._sink([record])
            except Exception as exc:  # a full disk must not fail the step: its output is not state
                self.broken = exc.message if isinstance(exc, WfrunError) \
                    else f"{type(exc).__name__}: {exc}"


def _echo(stream: TextIO | None, text: str | None) -> bool:
    """Echo `text` to the command's stderr (`--verbose`), or flush it (None): False if it
    cannot. A closed, full or broken stderr (`2>&-`, `2>/dev/full`, `2>&1 | head`) must not
    fail the step: what it wrote is kept all the same."""
    if stream is None:  # started with no stderr at all
        return False
    try:
        if text is None:
            stream.flush()
        else:
            stream.write(text)
    except (OSError, ValueError):
        return False
    return True


def _routers_to(echo: TextIO) -> tuple[_Router, _Router]:
    """A stdout and a stderr router echoing to `echo`: the last ones made, if they echo there
    and step code did not close them."""
    global _routers
    kept = _routers
    if kept is None or kept[0] is not echo or kept[1].shut or kept[2].shut:
        kept = _routers = (echo, _Router("stdout", echo), _Router("stderr", echo))
    return kept[1], kept[2]


def _unrouted(stream: TextIO) -> TextIO:
    """The stream itself, or the one it replaced if it is a router left in place (a caller
    that swapped sys.stdout while a step executed may have put one back after it ended)."""
    return stream.replaced if isinstance(stream, _Router) and stream.replaced else stream


def _target() -> StepOutput | None:
    """The capture of the step executing in this context, or (in a thread that is not
    wfrun's own) the only one executing."""
    current = _current.get()
    if current is not None:
        return current
    if is_own_thread():
        return None
    return _active[0] if len(_active) == 1 else None


class _Router(io.TextIOBase):
    """sys.stdout or sys.stderr while steps execute: keeps every write for its step, and echoes
    it to stderr with echo on."""

    def __init__(self, stream: str, echo: TextIO) -> None:
        super().__init__()
        self._stream = stream
        self._echo = echo
        # closed by step code (read here: `closed` looks for an attribute this class lacks,
        # and the AttributeError __getattr__ raises for it is not cheap)
        self.shut = False
        # the stream this router replaced when it was last installed; kept after the steps
        # end, for a thread that took the router from sys.stdout just before they did
        self.replaced: TextIO | None = None

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return getattr(self._echo, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str | None:  # type: ignore[override]
        return getattr(self._echo, "errors", None)

    @property
    def buffer(self) -> Any:
        """The echo's binary buffer: bytes written there reach stderr but are not kept."""
        return self._echo.buffer

    def __getattr__(self, name: str) -> Any:  # line_buffering, reconfigure, ...: the echo's
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._echo, name)

    def close(self) -> None:
        self.shut = True
        super().close()

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def fileno(self) -> int:
        return self._echo.fileno()  # writes through the descriptor reach stderr, not kept

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with _lock:
            target = _target()
            if target is None and is_own_thread():
                self._original().write(text)  # wfrun's own output, not a step's
                return len(text)
            if _echoing:
                _echo(self._echo, storable(text))  # as kept: a strict stderr refuses it
            if target is not None:
                target.feed(self._stream, text)
        return len(text)

    def _original(self) -> TextIO:
        """The stream this router replaced, also once it is no longer installed."""
        return self.replaced if self.replaced is not None else self._echo

    def flush(self) -> None:
        if _echoing:
            _echo(self._echo, None)
        if is_own_thread():
            with _lock:
                self._original().flush()
