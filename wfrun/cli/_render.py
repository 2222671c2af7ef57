"""Human output with rich (imported only here, and only when rendering for a person)."""

from __future__ import annotations

import os
import sys
from typing import IO, Any, Literal, cast

from ._blocks import STATUS_STYLE, Markup, run_blocks, schema_summary, shorten

UNWRAPPED = 1_000_000  # the console width when no terminal shows the text: nothing wraps


def _console(stderr: bool = False) -> Any:
    """Rich's console for stdout (or stderr). When no terminal shows it (a pipe, a file, cron),
    nothing wraps, not even inside a table's cell, and no line ends in the spaces a table pads
    its cells with, whatever the width of a terminal elsewhere (wfrun.cli._plain does the same
    without rich)."""
    from rich.console import Console as RichConsole

    class Console(RichConsole):
        def on_broken_pipe(self) -> None:
            # (rich's exits 1, which says a run failed: the command's handler decides)
            self.quiet = True
            raise BrokenPipeError(32, "the reader of stdout went away")

    # NO_COLOR (set and not empty, as no-color.org says): no escape codes at all, bold neither
    colours: Literal["auto"] | None = None if os.environ.get("NO_COLOR") else "auto"
    console = Console(stderr=stderr, highlight=False, soft_wrap=True, emoji=False,
                      color_system=colours)
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
    from ._plain import write_run

    if write_run(doc, with_steps):
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


def timeline(events: list[dict[str, Any]]) -> None:
    """A run's history, one line per event."""
    from rich.markup import escape

    console = _console()
    console.print("[bold]history[/]")
    skip = {"at", "type", "step", "traceback"}
    for ev in events:
        details = " ".join(f"{k}={shorten(v, 80)}" for k, v in ev.items()
                           if k not in skip and v is not None)
        step = f" {ev['step']}" if ev.get("step") else ""
        console.print(f"  {ev.get('at', '')}  {ev.get('type', ''):<16}{escape(step)}  "
                      f"[dim]{escape(details)}[/]")


def table(columns: list[str], rows: list[list[str]], empty: str,
          whole: tuple[int, ...] = (0,)) -> None:
    """A plain table, or a one-line note when there is nothing to show.

    Columns in `whole` (run ids, times) are never shortened, so they can be copied from a
    narrow terminal; the others wrap rather than being cut off with "…". When no terminal
    shows it, the same text is written without importing rich (wfrun.cli._plain).
    """
    from ._plain import write_table

    if write_table(columns, rows, empty):
        return
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
            console.print(f"    asks:   {escape(shorten(r['suspend_data'], 200))}")
        if r.get("resume_schema") is not None:
            console.print(f"    expects: {escape(schema_summary(r['resume_schema']))}")
        if r.get("approvals"):  # N of M approvers: the count and the decisions so far
            gate = r["approvals"]
            done = ", ".join(f"{d['by']} {d['action']}" for d in gate["decisions"])
            approved = sum(d["action"] == "approved" for d in gate["decisions"])
            console.print(f"    approvals: {approved} of {gate['required']} needed from "
                          f"{escape(', '.join(gate['approvers']))}"
                          + (f" ({escape(done)})" if done else ""))
        if r.get("gone"):  # its step no longer exists in the workflow: resume refuses it
            console.print(f"    {escape(r['gone'])}")
            continue
        how = "send:  " if "event" in r else "resume:"  # a wait_for_event: send the event
        console.print(f"    {how} {escape(r['resume_command'])}")


def _ask_label(row: dict[str, Any]) -> str:
    from rich.markup import escape

    said = ([f"ask #{row['ask']}"] if "ask" in row else []) + \
        ([f"label {escape(row['label'])}"] if row.get("label") else []) + \
        ([f"event {escape(row['event'])}"] if row.get("event") else [])
    return f" ({', '.join(said)})" if said else ""


def lines(items: list[str]) -> None:
    """Print lines of (markup-free) text (without rich when no terminal shows them)."""
    from ._plain import write_lines

    if write_lines(items):
        return
    console = _console()
    for item in items:
        console.print(item, markup=False)
