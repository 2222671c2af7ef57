"""Human output with rich (imported only here, and only when rendering for a person)."""

from __future__ import annotations

import json
from typing import Any

STATUS_STYLE = {
    "completed": "green", "running": "cyan", "suspended": "yellow", "waiting": "blue",
    "failed": "bold red", "cancelled": "magenta", "skipped": "dim", "pending": "dim",
}


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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


def run(doc: dict[str, Any], *, with_steps: bool = True) -> None:
    """A run: its status, its steps, and how to continue it."""
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(f"Run [bold]{doc['run_id']}[/] ({doc['workflow']}) is {_status(doc['status'])}.")
    if doc.get("parent"):
        parent = doc["parent"]
        where = parent["step"] + (f"[{parent['index']}]" if parent.get("index") is not None else "")
        console.print(f"  child run of step '{escape(where)}' of run {parent['run_id']}")
    if doc.get("error"):
        err = doc["error"]
        console.print(f"  [red]error in step '{err.get('step')}': {escape(err.get('type', ''))}: "
                      f"{escape(err.get('message', ''))}[/]")
    if doc["status"] == "completed" and doc.get("output") is not None:
        console.print(f"  output: {escape(_short(doc['output'], 200))}")
    if with_steps:
        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("step", "status", "runs", "output"):
            table.add_column(column)
        for sid, step in doc["steps"].items():
            shown = _short(step["output"])
            if step.get("iterations") and step["status"] in ("suspended", "waiting", "running"):
                done = sum(it["status"] == "completed" for it in step["iterations"])
                shown = f"({done} of {len(step['iterations'])} iterations completed)"
            elif step.get("child_run_id") and step["status"] in ("suspended", "waiting"):
                shown = f"(child run {step['child_run_id']})"
            table.add_row(escape(sid), _status(step["status"]), str(step["runs"]), escape(shown))
        console.print(table)
    for entry in doc.get("suspended", []):
        console.print(f"[yellow]⏸ {escape(entry['step'])}[/] waits for data since {entry['since']} "
                      f"(deadline {entry['deadline']}, then {entry['on_timeout']})")
        if entry.get("suspend_data") is not None:
            console.print(f"    asks: {escape(_short(entry['suspend_data'], 200))}")
        console.print(f"    resume: {escape(entry['resume_command'])}")
        console.print(f"    cancel: wfrun cancel {doc['run_id']}")
        console.print(f"    url:    {escape(entry['resume_url'])}")
    for entry in doc.get("waiting", []):
        if entry["kind"] == "child":  # its child run is executing (or awaits recovery by tick)
            console.print(f"[blue]⏲ {escape(entry['step'])}[/] child run "
                          f"{entry.get('child_run_id')} is running; 'wfrun show' it to follow")
            continue
        console.print(f"[blue]⏲ {escape(entry['step'])}[/] {entry['kind']} due at {entry['due_at']}"
                      f" (runs so far: {entry['runs']}); 'wfrun tick' fires it")
        if entry.get("resume_command"):
            console.print(f"    resume now: {escape(entry['resume_command'])}")


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
                      f"[yellow]{escape(step)}[/] since {r['since']}")
        console.print(f"    deadline {r['deadline']}, then {r['on_timeout']}")
        if r.get("suspend_data") is not None:
            console.print(f"    asks:   {escape(_short(r['suspend_data'], 200))}")
        console.print(f"    resume: {escape(r['resume_command'])}")


def lines(items: list[str]) -> None:
    """Print lines of (markup-free) text."""
    console = _console()
    for item in items:
        console.print(item, markup=False)
