"""Rich's own text for a run document, written without importing rich when no terminal shows it.

Importing rich costs about 40 ms, a fifth of `wfrun resume`. Where rich would print no colour
(stdout is not a terminal and no FORCE_COLOR, TTY_COMPATIBLE...), wfrun.cli._render gives rich an
unbounded width and drops the spaces that end lines, so its output is plain text that this
module reproduces byte for byte for what a run document contains: lines printed as they are
and a table of single-line ASCII cells. Anything else (control characters, other symbols in the
table) is left to rich. tests/unit/test_plain_render.py compares both outputs.
"""

from __future__ import annotations

import os
import re
import sys
from typing import Any

from ._blocks import Markup, run_blocks

# Environment variables that may make rich print colour (or act as in a notebook).
_RICH_ENV = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "JUPYTER_COLUMNS", "JUPYTER_LINES")
# Control characters and surrogates; compiled on first use (re's cache), for a text that is not
# ASCII: compiling it costs ~1.5 ms (its ranges make a 64K-entry charset), a cold command ~1 %.
_UNSAFE = r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]"


def write_run(doc: dict[str, Any], with_steps: bool) -> bool:
    """Write what rich would print for a run document; False (nothing written) if rich must."""
    if not plain_stdout():
        return False
    try:
        blocks = run_blocks(doc, with_steps, Markup())
    except ValueError:  # a value rich would read as markup
        return False
    lines: list[str] = []
    for kind, item in blocks:
        rendered = table(item) if kind == "table" else line(item)
        if rendered is None:
            return False
        lines.extend(rendered)
    sys.stdout.write("".join(f"{text}\n" for text in lines))
    sys.stdout.flush()
    return True


def write_lines(items: list[str]) -> bool:
    """Write markup-free lines as rich would; False (nothing written) if rich must."""
    if not plain_stdout() or any(map(_unsafe, items)):
        return False
    sys.stdout.write("".join(f"{text.rstrip(' ')}\n" for text in items))
    sys.stdout.flush()
    return True


def write_table(columns: list[str], rows: list[list[str]], empty: str) -> bool:
    """Write what rich prints for a table of columns and rows (or the `empty` note when there
    are no rows) with unbounded width; False (nothing written) if rich must."""
    if not rows:
        return write_lines([empty])
    if not plain_stdout() or any("\\" in cell or "[" in cell for row in rows for cell in row):
        return False  # markup and escapes: what rich makes of them is rich's to say
    rendered = table([columns, *rows])
    if rendered is None:
        return False
    sys.stdout.write("".join(f"{text}\n" for text in rendered))
    sys.stdout.flush()
    return True


def plain_stdout() -> bool:
    """True if rich would print plain text on stdout: no terminal, no colour asked for, UTF-8."""
    if os.name != "posix" or any(name in os.environ for name in _RICH_ENV):
        return False
    out = sys.stdout
    try:
        if out.isatty():
            return False
    except (AttributeError, ValueError):
        return False
    return (getattr(out, "encoding", None) or "").lower().replace("-", "") == "utf8"


def line(text: str) -> list[str] | None:
    """A line as rich prints it with soft wrap: as it is, however long, less ending spaces."""
    return None if _unsafe(text) else [text.rstrip(" ")]


def table(rows: list[list[str]]) -> list[str] | None:
    """A rich Table(box=None, pad_edge=False) of a header and rows, less ending spaces."""
    if not all(_one_cell_each(cell) for row in rows for cell in row):
        return None
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip(" ")
            for row in rows]


def _unsafe(text: str) -> bool:
    """Whether `text` holds a control character or a surrogate (rich does not print it as is)."""
    if text.isascii():  # ASCII's non-printable characters are its control characters
        return not text.isprintable()
    return re.search(_UNSAFE, text) is not None


def _one_cell_each(cell: str) -> bool:
    """Whether `cell` is printable ASCII and "…" only: one terminal cell per character."""
    rest = cell.replace("…", "")
    return rest.isascii() and rest.isprintable()
