"""The run document of SPEC §4 (what `--json` prints) and the list and pending entries."""

from __future__ import annotations

import re
from typing import Any

from wfrun._specs import Workflow
from wfrun.model import PAUSE_EVENT, PAUSE_RERUN, PAUSE_RETRY, SUSPENDED, WAITING, Run, StepState

from ._links import LinkMaker
from ._schedule import resume_refusal

COMPOSITE = ("child", "foreach")  # pauses of composite steps: no timer of their own
PUBLIC_STEP_KEYS = (
    "status", "runs", "output", "action", "resume_data", "suspend_data", "error",
    "started_at", "finished_at",
)


def suspended_entries(run: Run, workflow: Workflow | None, links: LinkMaker) -> list[dict[str, Any]]:
    """One entry per suspended step, with how to resume or cancel it."""
    entries = []
    for sid, state in run.steps.items():
        if state.status != SUSPENDED or not state.pause or state.pause.get("kind") in COMPOSITE:
            continue  # a composite step's suspensions are its iterations' or child's (_tree.py)
        pause = state.pause
        made = links.links(run.run_id, sid, pause.get("nonce", ""), workflow, pause.get("schema"))
        gone = gone_fields(run, sid, pause, workflow)
        entries.append({
            "step": sid, "path": [sid], "since": pause["since"], "deadline": pause["due_at"],
            "on_timeout": pause.get("on_timeout", "cancel"), "suspend_data": state.suspend_data,
            "label": pause.get("label"),
            "resume_command": made.resume_command, "resume_url": made.resume_url,
            "cancel_url": made.cancel_url, **ask_number(pause),
            **event_fields(links, run.run_id, pause),
            **(gone or approval_fields(links, run.run_id, sid, pause, workflow)),
        })
    return entries


def gone_fields(run: Run, step: str, pause: dict[str, Any],
                workflow: Workflow | None) -> dict[str, Any]:
    """For a pause that `resume` refuses because the workflow's current code no longer has its
    step (`step`, a manifest step): `gone`, the refusal (what it says to do), and no resume
    command or URL (its cancel URL still cancels the run); else nothing. An event's pause is
    left as it is: `wfrun send` still sends the event."""
    if pause.get("kind") == PAUSE_EVENT:
        return {}
    refused = resume_refusal(run, step, workflow)
    if refused is None:
        return {}
    # (an approvals step's links are its approvers'; the step's own cancel link opens nothing)
    closed = {"cancel_url": None} if pause.get("approvals") is not None else {}
    return {"resume_command": None, "resume_url": None, **closed, "gone": refused.message}


def approval_fields(links: LinkMaker, run_id: str, step: str, pause: dict[str, Any],
                    workflow: Workflow | None, schema_step: str | None = None,
                    top: str | None = None, address: str | None = None) -> dict[str, Any]:
    """For a step that N of M approvers decide (`approvals:`): the gate (required, approvers,
    the decisions so far) and each approver's links and command (`approvers`); the entry's
    own `resume_command` then names `--as NAME`, and it has no URL of its own (each approver
    has theirs); else nothing. For a step in a child run, the commands name the top-level
    run `top` and the step's `address` from it (the URLs are the child run's own)."""
    gate = pause.get("approvals")
    if not isinstance(gate, dict):
        return {}
    from ._approvals import display

    decided = {d["by"]: d["action"] for d in gate["decisions"]}
    nonce = pause.get("nonce", "")
    per = []
    for name in gate["approvers"]:
        made = links.links(run_id, step, nonce, workflow, schema_step=schema_step,
                           approver=name)
        said = links.links(top or run_id, address or step, nonce, workflow,
                           schema_step=schema_step, approver=name)
        per.append({"name": name, "decision": decided.get(name),
                    "resume_command": said.resume_command, "resume_url": made.resume_url,
                    "cancel_url": made.cancel_url})
    command = links.links(top or run_id, address or step, nonce, workflow,
                          schema_step=schema_step, approver="NAME").resume_command
    return {"approvals": display(gate), "approvers": per, "resume_command": command,
            "resume_url": None, "cancel_url": None}


def event_fields(links: LinkMaker, run_id: str, pause: dict[str, Any]) -> dict[str, Any]:
    """For a step waiting for an event (`wait_for_event`): the event's name, its URL (also
    the entry's `resume_url`: a POST to it continues the step), the schema its data must
    match, and the `wfrun send` command that continues it (as `resume_command`); else nothing."""
    if pause.get("kind") != PAUSE_EVENT:
        return {}
    name, schema = str(pause.get("event")), pause.get("schema")
    url = links.event_url(run_id, name)
    return {"event": name, "event_url": url, "event_schema": schema, "resume_url": url,
            "resume_command": links.send_command(run_id, name, schema)}


def inbox_entry(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of the run's inbox as the run document shows it: an early resume, or an event
    sent before any step waited for it."""
    if entry.get("kind") == "event":
        return {"kind": "event", "name": entry.get("name"), "accepted_at": entry.get("at"),
                "source": entry.get("source"), "data": entry.get("data")}
    return {"kind": entry["kind"], "step": entry.get("step"), "accepted_at": entry.get("at"),
            "action": entry.get("action"), "source": (entry.get("request") or {}).get("source"),
            "data": entry.get("data")}


def ask_number(source: dict[str, Any]) -> dict[str, Any]:
    """`{"ask": N}` if `source` (a pause, or an entry made from one) is at the N-th `ask()` of
    its step, else nothing (a suspension)."""
    return {"ask": source["ask"]} if "ask" in source else {}


def retry_error(node: StepState) -> dict[str, Any]:
    """`{"error": ...}`, what its last execution raised, for a node (a step, an iteration, a
    step of a child run) waiting for a retry under `retry:`; else nothing."""
    if node.status == WAITING and (node.pause or {}).get("kind") == PAUSE_RETRY and node.error:
        return {"error": node.error}
    return {}


def waiting_entries(run: Run, workflow: Workflow | None, links: LinkMaker) -> list[dict[str, Any]]:
    """One entry per step waiting on a timer (rerun, sleep, retry backoff)."""
    entries = []
    for sid, state in run.steps.items():
        if state.status != WAITING or not state.pause or state.pause.get("kind") in COMPOSITE:
            continue
        pause = state.pause
        entry: dict[str, Any] = {"step": sid, "kind": pause["kind"], "due_at": pause["due_at"],
                                 "runs": state.runs, **retry_error(state)}
        if pause["kind"] == PAUSE_RERUN:
            made = links.links(run.run_id, sid, pause.get("nonce", ""), workflow)
            entry.update(max_retries=pause.get("max_retries"), resume_url=made.resume_url,
                         cancel_url=made.cancel_url, resume_command=made.resume_command)
            entry.update(gone_fields(run, sid, pause, workflow))
        entries.append(entry)
    return entries


def run_document(
    run: Run,
    workflow: Workflow | None,
    links: LinkMaker,
    warnings: list[str] | None = None,
    history: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The run document of SPEC §4."""
    doc: dict[str, Any] = {
        "run_id": run.run_id, "workflow": run.workflow, "status": run.status,
        "input": run.input, "output": run.output, "error": run.error,
        "created_at": run.created_at, "updated_at": run.updated_at,
        "suspended": suspended_entries(run, workflow, links),
        "waiting": waiting_entries(run, workflow, links),
        "steps": {
            sid: {key: getattr(state, key) for key in PUBLIC_STEP_KEYS}
            for sid, state in run.steps.items()
        },
        "warnings": list(warnings or []),
    }
    doc["warnings"].extend(rerun_limit_warnings(run))
    if run.inbox:  # resumes accepted while their step was still executing, and events
        doc["inbox"] = [inbox_entry(e) for e in run.inbox]  # nothing waited for yet (SPEC §3)
    if history is not None:
        doc["history"] = history
    return doc


_FRAME = re.compile(r'^  File "(.*)", line (\d+), in ', re.MULTILINE)  # of error.traceback


def raised_at(error: dict[str, Any]) -> str | None:
    """`FILE:LINE` of the workflow code that raised a step error, from its traceback."""
    found = _FRAME.findall(str(error.get("traceback") or ""))
    return f"{found[-1][0]}:{found[-1][1]}" if found else None


def retry_note(run_id: str, address: str, node: StepState, command: str = "wfrun") -> str:
    """What to say of a node waiting for a retry (`address` in run `run_id`, a top-level
    run): what its execution raised, where in the workflow's code, and when it is retried
    (`command`: how the `show` it suggests starts)."""
    error, pause = node.error or {}, node.pause or {}
    where = raised_at(error)
    return (f"run {run_id}: step '{address}' raised {error.get('type')}: "
            f"{error.get('message')}{f' at {where}' if where else ''}; it is retried "
            f"at {pause.get('due_at')} ({command} show {run_id})")


def output_lost_warning(run_id: str, step: str, why: str, command: str = "wfrun") -> str:
    """What to say of a step execution whose output could not be stored (`why`: the error
    of the write to the run's log): from that line on it is missing from `wfrun logs`."""
    return (f"run {run_id}: what step '{step}' printed or logged could not be kept ({why}); "
            f"'{command} logs {run_id}' lacks it from that line on, and the run went on")


def rerun_limit_warning(step: str, max_retries: int) -> str:
    """What to say of a step whose rerun() was ignored because its limit was reached."""
    return (f"step '{step}' reached its rerun limit (max_retries={max_retries}): its last "
            "return value was taken as its output and the run went on")


def rerun_limit_warnings(run: Run) -> list[str]:
    """A warning for each step or foreach iteration that reached its rerun limit (the seeds'
    semantics: the step completes quietly; wfrun says so)."""
    found = []
    for sid, state in run.steps.items():
        if state.rerun_limit is not None:
            found.append(rerun_limit_warning(sid, state.rerun_limit))
        found.extend(rerun_limit_warning(f"{sid}[{index}]", it.rerun_limit)
                     for index, it in enumerate(state.iterations or ())
                     if it.rerun_limit is not None)
    return found


def next_due(run: Run) -> str | None:
    """The earliest timer or deadline of a paused run."""
    if run.finished:
        return None
    dues = [due for s in run.steps.values() for due in s.due_times()]
    return min(dues) if dues else None


def summary(run: Run) -> dict[str, Any]:
    """A `list --json` entry."""
    return {
        "run_id": run.run_id, "workflow": run.workflow, "status": run.status,
        "created_at": run.created_at, "updated_at": run.updated_at, "next_due": next_due(run),
    }
