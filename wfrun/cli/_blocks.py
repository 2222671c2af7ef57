"""What a run document says for people, as lines and tables, marked up for rich or as plain
text: the one builder behind wfrun.cli._render (rich) and wfrun.cli._plain (no rich)."""

from __future__ import annotations

import functools
import json
import re
from typing import Any

from wfrun._cite import cited

from ._settings import settings

# Patterns are compiled on first use (re's cache): most documents need none of them, and
# compiling one costs a cold command ~0.2-0.5 ms.
_OPEN_TAG = r"\[[a-z#/@][^\[\]]*$"  # a markup tag begun, its "]" still to come
STATUS_STYLE = {
    "completed": "green", "running": "cyan", "suspended": "yellow", "waiting": "blue",
    "failed": "bold red", "cancelled": "magenta", "skipped": "dim", "pending": "dim",
}


def shorten(value: Any, width: int = 60) -> str:
    """A value as one line of JSON, cut to `width` characters with "…"."""
    if value is None:
        return ""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def schema_summary(schema: Any, width: int = 200) -> str:
    """A resume schema in one line: an object's fields with their types, `?` after the
    optional ones (`{approved: boolean, comment?: string}`), else the schema as JSON."""
    props = schema.get("properties") if isinstance(schema, dict) else None
    if not isinstance(props, dict) or not props:
        return shorten(schema, width)
    required = set(schema.get("required") or [])
    fields = []
    for name, prop in props.items():
        prop = prop if isinstance(prop, dict) else {}
        kind = prop.get("type")
        if isinstance(prop.get("enum"), list):
            kind = " | ".join(json.dumps(v, ensure_ascii=False) for v in prop["enum"])
        elif isinstance(kind, list):
            kind = " or ".join(str(k) for k in kind)
        fields.append(f"{name}{'' if name in required else '?'}: {kind or 'any'}")
    text = "{" + ", ".join(fields) + "}"
    return text if len(text) <= width else text[: width - 1] + "…"


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
        if text.endswith("\\") or "\\[" in text or ("[" in text and re.search(_OPEN_TAG, text)):
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
        line(f"  output: {m.esc(shorten(doc['output'], 200))}")
    if with_steps:
        rows: list[list[str]] = [["step", "status", "runs", "output"]]
        for sid, step in doc["steps"].items():
            shown = shorten(step["output"])
            if step.get("iterations") and step["status"] in ("suspended", "waiting", "running"):
                done = sum(it["status"] == "completed" for it in step["iterations"])
                shown = f"({done} of {len(step['iterations'])} iterations completed)"
            elif step.get("child_run_id") and step["status"] in ("suspended", "waiting"):
                shown = f"(child run {step['child_run_id']})"
            rows.append([m.cell(sid), m.status(step["status"]), str(step["runs"]), m.cell(shown)])
        out.append(("table", rows))
    for entry in doc.get("suspended", []):
        what = f"the answer to its ask #{entry['ask']}" if "ask" in entry else "data"
        if "event" in entry:
            what = f"event '{m.esc(entry['event'])}'"
        named = f" (label {m.esc(entry['label'])})" if entry.get("label") else ""
        line(f"{m.style('yellow', '⏸ ' + m.esc(entry['step']))}{named} waits for {what} since "
             f"{m.raw(entry['since'])} (deadline {m.raw(entry['deadline'])}, then "
             f"{m.raw(entry['on_timeout'])})")
        if entry.get("suspend_data") is not None:
            line(f"    asks: {m.esc(shorten(entry['suspend_data'], 200))}")
        if entry.get("gone"):  # its step no longer exists in the workflow: resume refuses it
            line(f"    {m.esc(entry['gone'])}")
            line(f"    cancel: {m.esc(settings().command())} cancel {m.raw(doc['run_id'])}")
            continue
        if "approvals" in entry:  # N of M approvers: each with their own command and link
            _approvers(line, m, entry)
            continue
        line(f"    {'send:  ' if 'event' in entry else 'resume:'} {m.esc(entry['resume_command'])}")
        line(f"    cancel: {m.esc(settings().command())} cancel {m.raw(doc['run_id'])}")
        line(f"    url:    {m.esc(entry['resume_url'])}")
    finished = doc["status"] in ("completed", "failed", "cancelled")
    for entry in doc.get("inbox", []):
        if entry.get("kind") == "event":  # sent before any step waited for it (SPEC §3)
            fate = ("never taken: the run finished before a step waited for it" if finished
                    else "the next step that waits for it takes it")
            line(f"{m.style('cyan', '✉ ' + m.esc(str(entry.get('name'))))} kept since "
                 f"{m.raw(entry.get('accepted_at'))} (from {m.raw(entry.get('source'))}): {fate}")
    for entry in doc.get("waiting", []):
        if entry["kind"] == "child":  # its child run is executing (or awaits recovery by tick)
            line(f"{m.style('blue', '⏲ ' + m.esc(entry['step']))} child run "
                 f"{m.raw(entry.get('child_run_id'))} is running; 'wfrun show' it to follow")
            continue
        line(f"{m.style('blue', '⏲ ' + m.esc(entry['step']))} {m.raw(entry['kind'])} due at "
             f"{m.raw(entry['due_at'])} (runs so far: {m.raw(entry['runs'])}); "
             f"{m.esc(cited(settings().command() + ' tick'))} fires it")
        failed = entry.get("error")  # a retry's: what made it wait (an iteration's, a child's)
        if entry["kind"] == "retry" and failed:
            line(f"    its last execution raised {m.style('red', m.esc(error_text(failed)))}")
            for text in traceback_lines(failed):
                line("      " + m.esc(text))
        if entry.get("resume_command"):
            line(f"    resume now: {m.esc(entry['resume_command'])}")
        elif entry.get("gone"):
            line(f"    {m.esc(entry['gone'])}")
    return out


def _approvers(line: Any, m: Markup, entry: dict[str, Any]) -> None:
    """The lines of a step that N of M approvers decide: the count, each approver's decision
    or their command and link."""
    gate = entry["approvals"]
    approved = sum(d["action"] == "approved" for d in gate["decisions"])
    line(f"    approvals: {approved} of {gate['required']} needed from "
         f"{m.esc(', '.join(gate['approvers']))}")
    decided = {d["by"]: d for d in gate["decisions"]}
    for who in entry["approvers"]:
        done = decided.get(who["name"])
        if done is not None:
            line(f"    {m.esc(who['name'])}: {m.raw(done['action'])} at {m.raw(done['at'])} "
                 f"(from {m.raw(done['source'])})")
            continue
        line(f"    {m.esc(who['name'])}: {m.esc(who['resume_command'])}")
        line(f"      url: {m.esc(who['resume_url'])}")


def _append_line(out: list[tuple[str, Any]], text: str) -> None:
    out.append(("line", text))


_FRAME = r'  File "(?P<file>.*)", line (?P<line>\d+), in (?P<function>.*)'
_CARETS = r"\s*[~^]+\s*"


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
        frame = re.fullmatch(_FRAME, raw)
        if frame:
            out.append(f'File "{_relative(frame["file"])}", line {frame["line"]}, '
                       f'in {frame["function"]}')
        elif not re.fullmatch(_CARETS, raw):
            out.append(raw[2:])
    return out


def _relative(path: str) -> str:
    import os

    try:
        relative = os.path.relpath(path)
    except ValueError:
        return path
    return path if relative.startswith(os.pardir) else relative
