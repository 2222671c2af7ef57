"""Rich's own text for a run document, written without importing rich when no terminal shows it.

Importing rich costs about 40 ms, a fifth of `wfrun resume`. Where rich would print no colour
(stdout is not a terminal and no FORCE_COLOR, TTY_COMPATIBLE...), its output is plain text that
this module reproduces byte for byte for what a run document contains: lines printed as they are
(soft wrap) and a table of single-line ASCII cells that fits the width. Anything else (control
characters, other symbols in the table, a table wider than the console) is left to rich.
tests/test_plain_render.py compares both outputs.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

# Environment variables that make rich print colour, or size its console, other than COLUMNS.
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")
_TABLE_CELL = re.compile(r"[ -~…]*")  # printable ASCII (and "…"): one cell per character
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # control characters, surrogates


def write_run(doc: dict[str, Any], with_steps: bool) -> bool:
    """Write what rich would print for a run document; False (nothing written) if rich must."""
    width = console_width()
    if width is None:
        return False
    from . import _render

    try:
        blocks = _render.run_blocks(doc, with_steps, _render.Markup())
    except ValueError:  # a value rich would read as markup
        return False
    lines: list[str] = []
    for kind, item in blocks:
        rendered = table(item, width) if kind == "table" else line(item)
        if rendered is None:
            return False
        lines.extend(rendered)
    sys.stdout.write("".join(f"{text}\n" for text in lines))
    sys.stdout.flush()
    return True


def write_lines(items: list[str]) -> bool:
    """Write markup-free lines as rich would; False (nothing written) if rich must."""
    if console_width() is None or any(_UNSAFE.search(text) for text in items):
        return False
    sys.stdout.write("".join(f"{text}\n" for text in items))
    sys.stdout.flush()
    return True


def console_width() -> int | None:
    """The width rich's console would have, or None if rich would print colour (or might)."""
    if os.name != "posix" or any(name in os.environ for name in _RICH_ENV):
        return None
    out = sys.stdout
    try:
        if out.isatty():
            return None
    except (AttributeError, ValueError):
        return None
    if (getattr(out, "encoding", None) or "").lower().replace("-", "") != "utf8":
        return None
    width = 0
    for fd in (0, 1, 2):  # as rich does: the first standard stream that is a terminal
        try:
            width = os.get_terminal_size(fd).columns
        except (AttributeError, ValueError, OSError):
            continue
        break
    columns = os.environ.get("COLUMNS")
    if columns is not None and columns.isdigit():
        if int(columns) == 0:
            return None
        width = int(columns)
    return width or 80


def line(text: str) -> list[str] | None:
    """A line as rich prints it with soft wrap: as it is, however long."""
    return None if _UNSAFE.search(text) else [text]


def table(rows: list[list[str]], width: int) -> list[str] | None:
    """A rich Table(box=None, pad_edge=False) of a header and rows, if it fits `width`."""
    if not all(_TABLE_CELL.fullmatch(cell) for row in rows for cell in row):
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    if sum(widths) + 2 * (len(widths) - 1) > width:
        return None
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)) for row in rows]
