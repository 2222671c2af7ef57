"""The figures a PostgreSQL proof prints: under the test's name, where CI's log shows them."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest


@dataclass
class Figures:
    """What a proof measured, printed under the test's name where CI's log shows it."""

    title: str
    rows: list[tuple[str, Any]]

    def add(self, name: str, value: Any) -> None:
        self.rows.append((name, value))

    def lines(self) -> Iterator[str]:
        yield f"[{self.title}]"
        width = max((len(name) for name, _ in self.rows), default=0)
        for name, value in self.rows:
            yield f"    {name.ljust(width)}  {value}"


def show_figures(figures: Figures, capsys: pytest.CaptureFixture[str],
                 record_property: Any) -> None:
    """Print the figures on the terminal's stderr, past pytest's capture (a pytest-xdist worker
    forwards its stderr, not its stdout, to the terminal), and keep them as test properties
    (JUnit XML)."""
    text = "\n".join(figures.lines())
    with capsys.disabled():
        sys.stderr.write(f"\n{text}\n")
        sys.stderr.flush()
    for name, value in figures.rows:
        record_property(f"{figures.title}: {name}", str(value))
