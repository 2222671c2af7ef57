"""Human output with rich (imported only here, and only when rendering for a person)."""

from __future__ import annotations

import functools
import json
import re
import sys
from typing import IO, Any, cast

from ._app import settings

_OPEN_TAG = re.compile(r"\[[a-z#/@][^\[\]]*$")  # a markup tag begun, its "]" still to come
STATUS_STYLE = {
    "completed": "green", "running": "cyan", "suspended": "yellow", "waiting": "blue",
    "failed": "bold red", "cancelled": "magenta", "skipped": "dim", "pending": "dim",
}


UNWRAPPED = 1_000_000  # the console width when no terminal shows the text: nothing wraps


def _console(stderr: bool = False) -> Any:
    """Rich's console for stdout (or stderr). When no terminal shows it (a pipe, a file, cron),
    nothing wraps, not even inside a table's cell, and no line ends in the spaces a table pads
    its cells with, whatever the width of a terminal elsewhere (wfrun.cli._plain does the same
    without rich)."""
    from rich.console import Console

    console = Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False)
    if console.is_terminal:
        return console
    return Console(file=cast(IO[str], _Unpadded(console.file)), width=UNWRAPPED, highlight=False,
                   soft_wrap=True, emoji=False)


class _Unpadded:
    """A text stream that drops the spaces ending each line written to it."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.encoding = getattr(out, "encoding", "utf-8")
        self._partial = ""

    def write(self, text: str) -> int:
        """Write the complete lines of `text` without their trailing spaces; keep the rest."""
        *complete, self._partial = (self._partial + text).split("\n")
        if complete:
            self.out.write("".join(f"{line.rstrip(' ')}\n" for line in complete))
        return len(text)

    def flush(self) -> None:
        """Flush the stream below (a line not yet ended waits for its end)."""
        self.out.flush()

    def isatty(self) -> bool:
        """Never a terminal (rich asks)."""
        return False

    def fileno(self) -> int:
        """The descriptor of the stream below."""
        return int(self.out.fileno())


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, 'white')}]{status}[/]"


def _short(value: Any, width: int = 60) -> str:
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def warnings(items: list[str]) -> None:
    """Warnings go to stderr."""
    if items:
        from rich.markup import escape

        console = _console(stderr=True)
        for item in items:  # a warning may quote manifest text such as "[/x]": not markup
            console.print(f"[yellow]warning:[/] {escape(item)}", markup=True)


def error(message: str) -> None:
    """One clear sentence on stderr."""
    from rich.markup import escape

    _console(stderr=True).print(f"[bold red]error:[/] {escape(message)}")


def problems(messages: list[str]) -> None:
    """One `error:` line on stderr per message (runs that could not be read, kept, ...); plain
    text, so a list of many costs no rich import."""
    for message in messages:
        print(f"error: {message}", file=sys.stderr)


def run(doc: dict[str, Any], *, with_steps: bool = True) -> None:
    """A run: its status, its steps, and how to continue it.

    When no terminal shows it (a pipe, a file), the same text is written without importing
    rich (wfrun.cli._plain), unless only rich can lay it out exactly.
    """
    from . import _plain

    if _plain.write_run(doc, with_steps):
        return
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    for kind, item in run_blocks(doc, with_steps, Markup(escape)):
        if kind == "line":
            console.print(item)
            continue
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in item[0]:
            table.add_column(column)
        for row in item[1:]:
            table.add_row(*row)
        console.print(table)


class Markup:
    """How run_blocks marks text up: rich markup (with rich's `escape`), or plain text."""

    def __init__(self, escape: Any = None) -> None:
        self.plain = escape is None
        self.esc: Any = escape or self._check
        self.cell: Any = escape or self._check_cell  # a table cell: a markup string of its own
        self.raw: Any = self._check_raw if self.plain else str

    def style(self, style: str, text: str) -> str:
        """`text` in a style (no style in plain text)."""
        return text if self.plain else f"[{style}]{text}[/]"

    def status(self, status: str) -> str:
        """A run or step status, coloured."""
        return self.style(STATUS_STYLE.get(status, "white"), status)

    @staticmethod
    def _check(text: str) -> str:
        # What rich's escape() does not round-trip: a trailing backslash is doubled unless
        # markup follows, "\\[" that is not a tag becomes "[", and a final "[a" may become a tag
        # with a "]" from the text that follows it.
        if text.endswith("\\") or "\\[" in text or _OPEN_TAG.search(text):
            raise ValueError(text)
        return text

    @staticmethod
    def _check_cell(text: str) -> str:
        if "\\" in text:
            raise ValueError(text)
        return text

    @staticmethod
    def _check_raw(value: Any) -> str:
        text = str(value)
        if "[" in text or "\\" in text:  # rich would read it as markup: only rich can show it
            raise ValueError(text)
        return text


def run_blocks(doc: dict[str, Any], with_steps: bool, m: Markup) -> list[tuple[str, Any]]:
    """What `run` prints, in order: ("line", text) and ("table", [header, *rows])."""
    out: list[tuple[str, Any]] = []
    line = functools.partial(_append_line, out)
    line(f"Run {m.style('bold', m.raw(doc['run_id']))} ({m.raw(doc['workflow'])}) is "
         f"{m.status(doc['status'])}.")
    if doc.get("parent"):
        parent = doc["parent"]
        where = parent["step"] + (f"[{parent['index']}]" if parent.get("index") is not None else "")
        line(f"  child run of step '{m.esc(where)}' of run {m.raw(parent['run_id'])}")
    if doc.get("error"):
        err = doc["error"]
        line("  " + m.style("red", f"error in step '{m.raw(err.get('step'))}': "
                                   f"{m.esc(err.get('type', ''))}: {m.esc(err.get('message', ''))}"))
        for text in traceback_lines(err):
            line("    " + m.esc(text))
    if doc["status"] == "completed" and doc.get("output") is not None:
        line(f"  output: {m.esc(_short(doc['output'], 200))}")
    if with_steps:
        rows: list[list[str]] = [["step", "status", "runs", "output"]]
        for sid, step in doc["steps"].items():
            shown = _short(step["output"])
            if step.get("iterations") and step["status"] in ("suspended", "waiting", "running"):
                done = sum(it["status"] == "completed" for it in step["iterations"])
                shown = f"({done} of {len(step['iterations'])} iterations completed)"
            elif step.get("child_run_id") and step["status"] in ("suspended", "waiting"):
                shown = f"(child run {step['child_run_id']})"
            rows.append([m.cell(sid), m.status(step["status"]), str(step["runs"]), m.cell(shown)])
        out.append(("table", rows))
    for entry in doc.get("suspended", []):
        what = f"the answer to its ask #{entry['ask']}" if "ask" in entry else "data"
        named = f" (label {m.esc(entry['label'])})" if entry.get("label") else ""
        line(f"{m.style('yellow', '⏸ ' + m.esc(entry['step']))}{named} waits for {what} since "
             f"{m.raw(entry['since'])} (deadline {m.raw(entry['deadline'])}, then "
             f"{m.raw(entry['on_timeout'])})")
        if entry.get("suspend_data") is not None:
            line(f"    asks: {m.esc(_short(entry['suspend_data'], 200))}")
        line(f"    resume: {m.esc(entry['resume_command'])}")
        line(f"    cancel: {m.esc(settings().command())} cancel {m.raw(doc['run_id'])}")
        line(f"    url:    {m.esc(entry['resume_url'])}")
    for entry in doc.get("waiting", []):
        if entry["kind"] == "child":  # its child run is executing (or awaits recovery by tick)
            line(f"{m.style('blue', '⏲ ' + m.esc(entry['step']))} child run "
                 f"{m.raw(entry.get('child_run_id'))} is running; 'wfrun show' it to follow")
            continue
        line(f"{m.style('blue', '⏲ ' + m.esc(entry['step']))} {m.raw(entry['kind'])} due at "
             f"{m.raw(entry['due_at'])} (runs so far: {m.raw(entry['runs'])}); "
             f"'{m.esc(settings().command())} tick' fires it")
        failed = (doc["steps"].get(entry["step"]) or {}).get("error")
        if entry["kind"] == "retry" and failed:  # what made it wait for a retry
            line(f"    its last execution raised {m.style('red', m.esc(error_text(failed)))}")
            for text in traceback_lines(failed):
                line("      " + m.esc(text))
        if entry.get("resume_command"):
            line(f"    resume now: {m.esc(entry['resume_command'])}")
    return out


def _append_line(out: list[tuple[str, Any]], text: str) -> None:
    out.append(("line", text))


_FRAME = re.compile(r'  File "(?P<file>.*)", line (?P<line>\d+), in (?P<function>.*)')
_CARETS = re.compile(r"\s*[~^]+\s*")


def error_text(err: dict[str, Any]) -> str:
    """A step error in one line: `Type: message`."""
    return f"{err.get('type', '')}: {err.get('message', '')}"


def traceback_lines(err: dict[str, Any]) -> list[str]:
    """The workflow-code frames of a step error (its `traceback`) for people: `File "F", line N,
    in FUNCTION` and the source line below it; F relative to the working directory when under
    it. Empty when the error has no traceback (a schema or timeout error)."""
    text = err.get("traceback")
    if not isinstance(text, str):
        return []
    out = []
    for raw in text.splitlines()[1:]:
        if not raw.startswith("  "):
            break  # the exception itself: already on the error's line
        frame = _FRAME.fullmatch(raw)
        if frame:
            out.append(f'File "{_relative(frame["file"])}", line {frame["line"]}, '
                       f'in {frame["function"]}')
        elif not _CARETS.fullmatch(raw):
            out.append(raw[2:])
    return out


def _relative(path: str) -> str:
    import os

    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith(os.pardir) else relative


def timeline(events: list[dict[str, Any]]) -> None:
    """A run's history, one line per event."""
    from rich.markup import escape

    console = _console()
    console.print("[bold]history[/]")
    skip = {"at", "type", "step", "traceback"}
    for ev in events:
        details = " ".join(f"{k}={_short(v, 80)}" for k, v in ev.items()
                           if k not in skip and v is not None)
        step = f" {ev['step']}" if ev.get("step") else ""
        console.print(f"  {ev.get('at', '')}  {ev.get('type', ''):<16}{escape(step)}  "
                      f"[dim]{escape(details)}[/]")


def table(columns: list[str], rows: list[list[str]], empty: str,
          whole: tuple[int, ...] = (0,)) -> None:
    """A plain table, or a one-line note when there is nothing to show.

    Columns in `whole` (run ids, times) are never shortened, so they can be copied from a
    narrow terminal; the others wrap rather than being cut off with "…".
    """
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    if not rows:
        console.print(empty)
        return
    out = Table(box=None, pad_edge=False, header_style="bold")
    for i, column in enumerate(columns):
        if i in whole:
            out.add_column(column, no_wrap=True, min_width=max(len(r[i]) for r in rows))
        else:
            out.add_column(column, overflow="fold")
    for row in rows:
        out.add_row(*[_status(c) if c in STATUS_STYLE else escape(c) for c in row])
    console.print(out)


def suspensions(rows: list[dict[str, Any]]) -> None:
    """Open suspensions (`wfrun pending`), a short block each, readable at any width."""
    from rich.markup import escape

    console = _console()
    if not rows:
        console.print("nothing is waiting for data")
        return
    for r in rows:
        step = "/".join(r.get("path") or [r["step"]])
        console.print(f"[yellow]⏸[/] [bold]{r['run_id']}[/] {escape(r['workflow'])} "
                      f"[yellow]{escape(step)}[/]{_ask_label(r)} since {r['since']}")
        console.print(f"    deadline {r['deadline']}, then {r['on_timeout']}")
        if r.get("suspend_data") is not None:
            console.print(f"    asks:   {escape(_short(r['suspend_data'], 200))}")
        console.print(f"    resume: {escape(r['resume_command'])}")


def _ask_label(row: dict[str, Any]) -> str:
    from rich.markup import escape

    said = ([f"ask #{row['ask']}"] if "ask" in row else []) + \
        ([f"label {escape(row['label'])}"] if row.get("label") else [])
    return f" ({', '.join(said)})" if said else ""


def lines(items: list[str]) -> None:
    """Print lines of (markup-free) text (without rich when no terminal shows them)."""
    from . import _plain

    if _plain.write_lines(items):
        return
    console = _console()
    for item in items:
        console.print(item, markup=False)
