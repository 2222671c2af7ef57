"""What every store checks of a workflow's schedule state before keeping it: the workflow's
name and that the state is JSON, with the same messages whichever store keeps it."""

from __future__ import annotations

import json
import re
from typing import Any

from wfrun.errors import UsageError

_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")


def check_workflow_name(workflow: str) -> None:
    """UsageError unless `workflow` is a workflow name (`[a-z0-9][a-z0-9_-]*`)."""
    if not isinstance(workflow, str) or not _NAME.fullmatch(workflow):
        raise UsageError(f"invalid workflow name {str(workflow)[:80]!r}: use "
                         "[a-z0-9][a-z0-9_-]*")


def state_json(workflow: str, value: Any, **options: Any) -> str:
    """`value` (a schedule state, or a document holding one) as JSON text (`options` go to
    `json.dumps`); UsageError naming the workflow if it is not JSON."""
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, **options)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"the schedule state of workflow '{workflow}' is not JSON: "
                         f"{exc}") from None
