"""Step addresses across nested runs and foreach iterations: `review[1]/approve`."""

from __future__ import annotations

import re
from dataclasses import dataclass

from wfrun.errors import UsageError

from ._composite import label

_SEGMENT = re.compile(r"([A-Za-z0-9_-]+)(?:\[(\d{1,9})\])?")


@dataclass(frozen=True)
class Segment:
    """One level of an address: a step id and, for a foreach step, an iteration index."""

    step: str
    index: int | None = None

    def __str__(self) -> str:
        return label(self.step, self.index)


def parse(address: str) -> list[Segment]:
    """`a[1]/b` -> [Segment("a", 1), Segment("b")]; UsageError if it is not an address."""
    segments = []
    for part in address.split("/"):
        match = _SEGMENT.fullmatch(part)
        if match is None:
            raise UsageError(
                f"--step {address!r} is not a step address: use STEP, STEP[INDEX] for a foreach "
                "iteration, and '/' between a workflow step and its child's step "
                "(for example review[1]/approve)"
            )
        index = match.group(2)
        segments.append(Segment(match.group(1), int(index) if index is not None else None))
    return segments


def join(*parts: str) -> str:
    """Join address parts with '/'."""
    return "/".join(p for p in parts if p)
