"""A run seen with its foreach iterations and child runs: full-path suspended and waiting
entries for the run document and `pending`, and the addresses that can take data."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wfrun._specs import Workflow
from wfrun.errors import CodeChangedError, WfrunError
from wfrun.model import PAUSE_EVENT, PAUSE_RERUN, PAUSE_SUSPEND, SUSPENDED, WAITING, Run, StepState

from ._address import join
from ._ask import expected_schema
from ._composite import has_composites, label, node_of
from ._document import (
    PUBLIC_STEP_KEYS,
    approval_fields,
    ask_number,
    event_fields,
    gone_fields,
    retry_error,
    retry_note,
)
from ._runner_api import Reader
from ._schedule import resume_refusal

MAX_DEPTH = 32
_TAKES_DATA = {(SUSPENDED, PAUSE_SUSPEND), (WAITING, PAUSE_RERUN)}


def _nodes(sid: str, state: StepState) -> list[tuple[str, str, StepState]]:
    """(step id, label, node) for a step, or for each of its iterations."""
    if state.iterations is None:
        return [(sid, sid, state)]
    return [(sid, label(sid, i), it) for i, it in enumerate(state.iterations)]


def _load(runs: Reader, run_id: str) -> tuple[Run, Workflow | None] | None:
    try:
        child = runs.store.load(run_id)
    except WfrunError:
        return None
    try:
        return child, runs.workflow_of(child, [])
    except WfrunError:
        return child, None


def candidates(runs: Reader, run: Run, depth: int = 0) -> list[str]:
    """Addresses (`step`, `step[2]`, `step/child-step`) of everything that can take data now."""
    found: list[str] = []
    for sid, state in run.steps.items():
        for _, name, it in _nodes(sid, state):
            if it.child and it.status in (SUSPENDED, WAITING) and depth < MAX_DEPTH:
                loaded = _load(runs, it.child)
                if loaded and not loaded[0].finished:
                    found.extend(join(name, c) for c in candidates(runs, loaded[0], depth + 1))
            elif (it.status, (it.pause or {}).get("kind")) in _TAKES_DATA:
                found.append(name)
    return found


def event_waiter(runs: Reader, run: Run, name: str, depth: int = 0) -> tuple[str, str] | None:
    """(child run id, address of its node in `run`) of the first child run below `run`, in
    manifest order, with a step waiting for event `name` now; None if there is none."""
    for sid, state in run.steps.items():
        for _, node, it in _nodes(sid, state):
            if not it.child or it.status not in (SUSPENDED, WAITING) or depth >= MAX_DEPTH:
                continue
            loaded = _load(runs, it.child)
            if loaded is None or loaded[0].finished:
                continue
            child = loaded[0]
            if any(s.status == SUSPENDED and (s.pause or {}).get("kind") == PAUSE_EVENT
                   and (s.pause or {}).get("event") == name for s in child.steps.values()):
                return child.run_id, node
            below = event_waiter(runs, child, name, depth + 1)
            if below is not None:
                return below[0], join(node, below[1])
    return None


def labelled(runs: Reader, run: Run, depth: int = 0) -> list[tuple[str, str]]:
    """(address, label) of every open suspension that has a label, in the run, its
    iterations and its child runs (addresses as `candidates` gives them)."""
    found: list[tuple[str, str]] = []
    for sid, state in run.steps.items():
        for _, name, it in _nodes(sid, state):
            pause = it.pause or {}
            if it.child and it.status in (SUSPENDED, WAITING) and depth < MAX_DEPTH:
                loaded = _load(runs, it.child)
                if loaded and not loaded[0].finished:
                    found.extend((join(name, address), label)
                                 for address, label in labelled(runs, loaded[0], depth + 1))
            elif it.status == SUSPENDED and pause.get("kind") in (PAUSE_SUSPEND, PAUSE_EVENT) \
                    and pause.get("label"):
                found.append((name, str(pause["label"])))
    return found


def retry_notes(runs: Reader, run: Run, since: str, command: str = "wfrun") -> list[str]:
    """A line (`retry_note`) for each node of the run, its iterations and its child runs that
    began waiting for a retry at or after `since` (an ISO time), addressed from the top-level
    run above it: the same line whichever of them a tick advanced (said once)."""
    found = _retrying(runs, run, since)
    if not found:
        return []
    top, above = _from_top(runs, run)
    return [retry_note(top, join(above, address), node, command) for address, node in found]


def _from_top(runs: Reader, run: Run) -> tuple[str, str]:
    """The id of the top-level run above `run` and the address of `run` in it (`run` and ""
    for a top-level run; the highest run that can be read if a parent cannot)."""
    top, address = run, ""
    for _ in range(MAX_DEPTH):
        info = top.parent
        if not info:
            break
        try:
            parent = runs.store.load(info["run_id"])
        except WfrunError:
            break
        top, address = parent, join(label(info["step"], info.get("index")), address)
    return top.run_id, address


def _retrying(runs: Reader, run: Run, since: str,
              depth: int = 0) -> list[tuple[str, StepState]]:
    found: list[tuple[str, StepState]] = []
    for sid, state in run.steps.items():
        for _, name, it in _nodes(sid, state):
            if it.child and it.status in (SUSPENDED, WAITING) and depth < MAX_DEPTH:
                try:
                    child = runs.store.load(it.child)  # (its workflow is not needed)
                except WfrunError:
                    continue
                found.extend((join(name, address), node) for address, node
                             in _retrying(runs, child, since, depth + 1))
            elif retry_error(it) and (it.pause or {}).get("since", "") >= since:
                found.append((name, it))
    return found


def resumed_labelled(runs: Reader, run: Run, label_name: str,
                     depth: int = 0) -> tuple[str, str] | None:
    """(address, resumed_at) of the suspension labelled `label_name` that was last opened in
    the run or below it, if it has been resumed (its `suspended` event keeps the label)."""
    try:
        history = runs.store.read_history(run.run_id)
    except WfrunError:
        history = []
    for entry in reversed(history):
        if entry.get("type") == "suspended" and entry.get("label") == label_name:
            state = node_of(run, str(entry.get("step")))
            if state is not None and state.resumed_at:
                return str(entry["step"]), state.resumed_at
            break
    for sid, state in run.steps.items():
        for _, name, it in _nodes(sid, state):
            if it.child and depth < MAX_DEPTH:
                loaded = _load(runs, it.child)
                found = loaded and resumed_labelled(runs, loaded[0], label_name, depth + 1)
                if found:
                    return join(name, found[0]), found[1]
    return None


def latest_resumed(runs: Reader, run: Run, under: str | None = None, prefix: str = "",
                   depth: int = 0) -> tuple[str, str] | None:
    """(resumed_at, address) of the suspension resumed last in the run, its iterations and its
    child runs; with `under`, only at that address or below it (`child`, `each[1]`)."""
    best: tuple[str, str] | None = None
    for sid, state in run.steps.items():
        for _, name, it in _nodes(sid, state):
            address = join(prefix, name) if prefix else name
            if it.resumed_at and _within(address, under):
                best = max(best or ("", ""), (it.resumed_at, address))
            if it.child and depth < MAX_DEPTH:
                loaded = _load(runs, it.child)
                found = loaded and latest_resumed(runs, loaded[0], under, address, depth + 1)
                if found:
                    best = max(best or ("", ""), found)
    return best


def _within(address: str, under: str | None) -> bool:
    return under is None or address == under or address.startswith((f"{under}/", f"{under}["))


@dataclass
class Entries:
    """The suspended and waiting entries of a run and everything below it."""

    suspended: list[dict[str, Any]] = field(default_factory=list)
    waiting: list[dict[str, Any]] = field(default_factory=list)
    schemas: list[Any] = field(default_factory=list)  # resume_schema per suspended entry


def entries(runs: Reader, run: Run, workflow: Workflow | None, top: str | None = None,
            prefix: tuple[str, ...] = (), depth: int = 0) -> Entries:
    """Every suspension and timer of the run, its iterations and its children, addressed from
    the top-level run `top` (the resume command names it; the URLs are the leaf run's own)."""
    top = top or run.run_id
    out = Entries()
    links = runs.links
    for sid, state in run.steps.items():
        spec = workflow.steps.get(sid) if workflow else None
        for _, name, it in _nodes(sid, state):
            path = (*prefix, name)
            address = join(*path)
            pause = it.pause or {}
            if it.child and it.status in (SUSPENDED, WAITING):
                loaded = _load(runs, it.child) if depth < MAX_DEPTH else None
                if loaded and loaded[0].status not in (SUSPENDED, WAITING):
                    loaded = None
                if loaded is None:  # being executed (or not readable): say so, no timer
                    out.waiting.append({"step": address, "path": list(path), "kind": "child",
                                        "due_at": None, "runs": it.runs,
                                        "child_run_id": it.child})
                    continue
                below = entries(runs, loaded[0], loaded[1], top, path, depth + 1)
                refused = resume_refusal(run, sid, workflow)
                if refused is not None:  # the parent's step is gone: it could never go on
                    for open_entry in (*below.suspended, *below.waiting):
                        if open_entry.get("resume_command") is not None:
                            open_entry.update(resume_command=None, resume_url=None,
                                              gone=refused.message)
                out.suspended.extend(below.suspended)
                out.waiting.extend(below.waiting)
                out.schemas.extend(below.schemas)
                continue
            if not pause.get("due_at"):
                continue
            made = links.links(run.run_id, name, pause.get("nonce", ""), workflow,
                               pause.get("schema"), schema_step=sid)
            command = made.resume_command
            if address != name or top != run.run_id:
                command = links.links(top, address, pause.get("nonce", ""), workflow,
                                      pause.get("schema"), schema_step=sid).resume_command
            extra = {"child_run_id": run.run_id} if top != run.run_id else {}
            gone = gone_fields(run, sid, pause, workflow)  # resume refuses it: say why
            if it.status == SUSPENDED and pause.get("kind") in (PAUSE_SUSPEND, PAUSE_EVENT):
                waits = event_fields(links, run.run_id, pause)  # an event: sent to this run
                out.suspended.append({
                    "step": address, "path": list(path), "since": pause["since"],
                    "deadline": pause["due_at"], "on_timeout": pause.get("on_timeout", "cancel"),
                    "suspend_data": it.suspend_data, "label": pause.get("label"),
                    "resume_command": command,
                    "resume_url": made.resume_url, "cancel_url": made.cancel_url,
                    **ask_number(pause), **extra, **waits,
                    **(gone or approval_fields(links, run.run_id, name, pause, workflow, sid,
                                               top, address)),
                })
                out.schemas.append(waits["event_schema"] if waits else expected_schema(it, spec))
            elif it.status == WAITING:
                entry: dict[str, Any] = {"step": address, "kind": pause["kind"],
                                         "due_at": pause["due_at"], "runs": it.runs,
                                         **retry_error(it)}
                if pause["kind"] == PAUSE_RERUN:
                    entry.update(max_retries=pause.get("max_retries"),
                                 resume_url=made.resume_url, cancel_url=made.cancel_url,
                                 resume_command=command)
                    entry.update(gone)
                if prefix or it is not state:
                    entry["path"] = list(path)
                entry.update(extra)
                out.waiting.append(entry)
    return out


def parent_refusal(reader: Reader, run: Run) -> CodeChangedError | None:
    """Why a child run is not resumed when its parent (or any run above it) no longer has the
    step that owns it (the parent could never continue), else None."""
    child = run
    for _ in range(MAX_DEPTH):
        info = child.parent
        if info is None:
            return None
        try:
            parent = reader.store.load(str(info["run_id"]))
            workflow = reader.workflow_of(parent, [])
        except WfrunError:
            return None  # (a parent that cannot be read: the resume says nothing of it)
        refused = resume_refusal(parent, str(info["step"]), workflow)
        if refused is not None:
            return refused
        child = parent
    return None


def extend_document(runs: Reader, doc: dict[str, Any], run: Run,
                    workflow: Workflow | None) -> None:
    """Add to a run document what nesting brings: full-path entries, child run ids,
    iterations, and the parent of a child run."""
    if run.parent is not None:
        doc["parent"] = {k: run.parent.get(k) for k in ("run_id", "step", "index")}
    if has_composites(run):
        found = entries(runs, run, workflow)
        doc["suspended"], doc["waiting"] = found.suspended, found.waiting
    refused = parent_refusal(runs, run) if run.parent is not None else None
    if refused is not None:  # a step above it is gone: nothing in it can be resumed
        for entry in (*doc["suspended"], *doc["waiting"]):
            if entry.get("resume_command") is not None:
                entry.update(resume_command=None, resume_url=None, gone=refused.message)
    if not has_composites(run):
        return
    for sid, state in run.steps.items():
        step = doc["steps"].get(sid)
        if step is None:
            continue
        if state.child:
            step["child_run_id"] = state.child
        if state.iterations is not None:
            step["iterations"] = [
                {**{k: getattr(it, k) for k in PUBLIC_STEP_KEYS},
                 **({"child_run_id": it.child} if it.child else {})}
                for it in state.iterations
            ]
