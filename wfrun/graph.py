"""A workflow as a graph, in Mermaid or Graphviz DOT text or as a JSON-ready document: steps,
`needs` edges, `when` actions.

Pure functions of a loaded `Workflow` (and, for `wfrun graph --run`, each step's status in a
run); no I/O. What a step is shows in its shape: a rectangle for code, a hexagon for a `wait`
step (a suspension), a stadium (rounded box) for `sleep`/`sleep_until`, a double-sided box for
a child `workflow:`. What it has shows in its border and text: `foreach` a thick border,
`retry:` a dashed one, `actions:`/`label:` italic text, each with a line saying so. Whether a
code step calls `suspend`, `rerun` or `sleep` is not known before it runs, so nothing is said
about it. With statuses, each step is filled with its status's colour and names it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from wfrun._specs import StepSpec, Workflow
from wfrun.durations import format_duration, to_iso
from wfrun.manifest import DEFAULT_TIMEOUT

FORMATS = ("mermaid", "dot")
STEP_STATUSES = ("pending", "running", "suspended", "waiting", "completed", "skipped", "failed",
                 "cancelled")
DEFAULT_ON_TIMEOUT = "cancel"  # of a suspension (SPEC §2), as DEFAULT_TIMEOUT is its timeout

# Fill, border and text colour of each status (a run's) and each kind of step (no run given).
STATUS_COLOURS = {
    "pending": ("#f1f3f5", "#adb5bd", "#495057"),
    "running": ("#cfe2ff", "#0d6efd", "#052c65"),
    "suspended": ("#fff3cd", "#d39e00", "#664d03"),
    "waiting": ("#e2d9f3", "#6f42c1", "#3d1a78"),
    "completed": ("#d1e7dd", "#198754", "#0a3622"),
    "skipped": ("#ffffff", "#ced4da", "#868e96"),
    "failed": ("#f8d7da", "#dc3545", "#58151c"),
    "cancelled": ("#dee2e6", "#6c757d", "#343a40"),
}
KIND_COLOURS = {
    "wait": ("#fff8e1", "#b7791f", "#5f370e"),
    "sleep": ("#e7f1fb", "#3b73b9", "#1a365d"),
    "child": ("#eaf6ec", "#2f855a", "#1c4532"),
}
# Border and text styles of what a step has, combined with any fill above.
MARKS = {
    "foreach": ("stroke-width:3px", {"penwidth": "3"}),
    "retry": ("stroke-dasharray:6 3", {"style": "dashed"}),
    "named": ("font-style:italic", {"fontname": "Helvetica-Oblique"}),
}
_MERMAID_SHAPES = {"code": ("[", "]"), "wait": ("{{", "}}"), "sleep": ("([", "])"),
                   "workflow": ("[[", "]]")}
_DOT_SHAPES = {"code": {"shape": "box"}, "wait": {"shape": "hexagon"},
               "sleep": {"shape": "box", "style": "rounded"},
               "workflow": {"shape": "box", "peripheries": "2"}}


class Node:
    """One step as drawn: its id, kind, the lines of its label and its classes."""

    def __init__(self, spec: StepSpec, status: str | None) -> None:
        self.id = spec.id
        self.kind = spec.kind if spec.kind in _MERMAID_SHAPES else "code"
        self.lines = [spec.id, *_details(spec)]
        self.status = status
        if status is not None:
            self.lines.append(f"status: {status}")
        self.marks = [mark for mark, has in (("foreach", spec.foreach is not None),
                                             ("retry", spec.retry is not None),
                                             ("named", bool(spec.actions) or spec.label is not None))
                      if has]

    @property
    def fill(self) -> str | None:
        """The class that gives the node its colours: its status, else its kind (code: none)."""
        if self.status is not None:
            return self.status
        return {"wait": "wait", "sleep": "sleep", "workflow": "child"}.get(self.kind)


class Edge:
    """`source` -> `target`: the `when` actions of `source` that let `target` run, whether
    `target` iterates over `source`'s output (foreach), and dotted when not a `needs`."""

    def __init__(self, source: str, target: str, actions: tuple[str, ...], foreach: bool,
                 dotted: bool) -> None:
        self.source, self.target, self.actions = source, target, actions
        self.foreach, self.dotted = foreach, dotted

    @property
    def label(self) -> str | None:
        """The text on the arrow: `for each`, the actions joined by `or`; None for neither."""
        parts = (["for each"] if self.foreach else []) + (
            [" or ".join(self.actions)] if self.actions else [])
        return ", ".join(parts) or None


def _details(spec: StepSpec) -> list[str]:
    """The lines under a step's id: what the manifest says it is and has."""
    lines = []
    if spec.kind == "wait":
        timeout = spec.timeout if spec.timeout is not None else DEFAULT_TIMEOUT
        lines.append(f"wait up to {format_duration(timeout)}, "
                     f"then {spec.on_timeout or DEFAULT_ON_TIMEOUT}")
    elif spec.kind == "sleep":
        lines.append(f"sleep {format_duration(spec.sleep)}" if spec.sleep is not None
                     else f"sleep until {to_iso(spec.sleep_until)}" if spec.sleep_until
                     else "sleep")
    elif spec.kind == "workflow":
        lines.append(f"workflow {spec.workflow}")
    if spec.foreach is not None:
        lines.append(f"for each item of {spec.foreach}")
    if spec.input_from is not None:
        lines.append(f"input from {spec.input_from}")
    if spec.retry is not None:
        lines.append(f"retry: up to {spec.retry.max_attempts} attempts")
    if spec.actions:
        lines.append(f"actions: {', '.join(spec.actions)}")
    if spec.label is not None:
        lines.append(f"label: {spec.label}")
    return lines


def _edges(workflow: Workflow) -> list[Edge]:
    """One edge per `needs` (labelled with its `when` actions, and `for each` from the list a
    foreach step iterates over), and a dotted one for a `when`/`foreach` naming a step that is
    not a direct need."""
    edges = []
    for spec in workflow.steps.values():
        sources = list(spec.needs) + [s for s in (*spec.when, spec.foreach)
                                      if s is not None and s not in spec.needs]
        for source in dict.fromkeys(sources):
            edges.append(Edge(source, spec.id, spec.when.get(source, ()),
                              foreach=source == spec.foreach, dotted=source not in spec.needs))
    return edges


def render(workflow: Workflow, statuses: Mapping[str, str] | None = None,
           fmt: str = "mermaid", run_id: str | None = None) -> str:
    """The workflow as Mermaid (`flowchart TD`) or DOT text; with `statuses` (step id -> its
    status in run `run_id`; a step not in it is pending), each step coloured by its status."""
    nodes = [Node(spec, None if statuses is None else statuses.get(spec.id, "pending"))
             for spec in workflow.steps.values()]
    edges = _edges(workflow)
    title = f"workflow {workflow.name}" + (f", run {run_id}" if run_id else "")
    if workflow.description:
        title += f": {' '.join(workflow.description.split())}"
    if fmt == "dot":
        return _dot(workflow.name, title, nodes, edges)
    if fmt == "mermaid":
        return _mermaid(title, nodes, edges)
    raise ValueError(f"unknown graph format {fmt!r} (known: {', '.join(FORMATS)})")


def document(workflow: Workflow, statuses: Mapping[str, str] | None = None,
             run_id: str | None = None) -> dict[str, Any]:
    """The graph as a JSON-ready document (`wfrun graph --json`): the steps in manifest order
    with what the drawing shows of each, and the edges; with `statuses` (as for `render`), each
    step's status in run `run_id` (else null)."""
    steps = []
    for spec in workflow.steps.values():
        suspends = spec.kind in ("code", "wait")  # (sleep and workflow steps take no timeout)
        retry = spec.retry
        steps.append({
            "id": spec.id,
            "kind": spec.kind,
            "needs": list(spec.needs),
            "when": {source: list(actions) for source, actions in spec.when.items()},
            "foreach": spec.foreach,
            "workflow": spec.workflow,
            "input_from": spec.input_from,
            "timeout": format_duration(spec.timeout if spec.timeout is not None
                                       else DEFAULT_TIMEOUT) if suspends else None,
            "on_timeout": (spec.on_timeout or DEFAULT_ON_TIMEOUT) if suspends else None,
            "sleep": format_duration(spec.sleep) if spec.sleep is not None else None,
            "sleep_until": to_iso(spec.sleep_until) if spec.sleep_until is not None else None,
            "retry": None if retry is None else {
                "max_attempts": retry.max_attempts, "delay": format_duration(retry.delay),
                "backoff": retry.backoff, "max_delay": format_duration(retry.max_delay)},
            "actions": None if spec.actions is None else list(spec.actions),
            "label": spec.label,
            "status": None if statuses is None else statuses.get(spec.id, "pending"),
        })
    edges = [{"from": edge.source, "to": edge.target, "when": list(edge.actions) or None,
              "foreach": edge.foreach, "needs": not edge.dotted}
             for edge in _edges(workflow)]
    return {"workflow": workflow.name, "description": workflow.description, "run_id": run_id,
            "steps": steps, "edges": edges}


# -- Mermaid ------------------------------------------------------------------------------------

_MERMAID_ENTITIES = {"#": "#35;", '"': "#quot;", "<": "#lt;", ">": "#gt;", "&": "#amp;",
                     "`": "#96;", "|": "#124;"}


def _mermaid_text(text: str) -> str:
    """`text` made safe inside a quoted Mermaid label (entity codes for what Mermaid reads)."""
    return "".join(_MERMAID_ENTITIES.get(char, char) for char in " ".join(text.split()))


def mermaid_ids(step_ids: list[str]) -> dict[str, str]:
    """A Mermaid node id per step id: `s_` and the id with `-` as `_` (a prefix keeps ids
    clear of Mermaid's keywords, such as `end`), made unique with a number where two meet."""
    wanted = {sid: "s_" + re.sub(r"[^A-Za-z0-9_]", "_", sid) for sid in step_ids}
    taken: set[str] = set()
    ids = {}
    for sid in step_ids:
        candidate, n = wanted[sid], 2
        while candidate in taken or (candidate != wanted[sid] and candidate in wanted.values()):
            candidate, n = f"{wanted[sid]}_{n}", n + 1
        taken.add(candidate)
        ids[sid] = candidate
    return ids


def _mermaid(title: str, nodes: list[Node], edges: list[Edge]) -> str:
    ids = mermaid_ids([node.id for node in nodes])
    out = ["flowchart TD", f"    %% {title}"]
    for node in nodes:
        opening, closing = _MERMAID_SHAPES[node.kind]
        label = "<br/>".join(_mermaid_text(line) for line in node.lines)
        out.append(f'    {ids[node.id]}{opening}"{label}"{closing}')
    for edge in edges:
        arrow = "-.->" if edge.dotted else "-->"
        label = f'|"{_mermaid_text(edge.label)}"|' if edge.label else ""
        out.append(f"    {ids[edge.source]} {arrow}{label} {ids[edge.target]}")
    classes: dict[str, list[str]] = {}
    for node in nodes:
        for name in ([node.fill] if node.fill else []) + node.marks:
            classes.setdefault(name, []).append(ids[node.id])
    colours = {**STATUS_COLOURS, **KIND_COLOURS}
    for name, members in classes.items():
        if name in colours:
            fill, stroke, text = colours[name]
            style = f"fill:{fill},stroke:{stroke},color:{text}"
        else:
            style = MARKS[name][0]
        out.append(f"    classDef {name} {style}")
        out.append(f"    class {','.join(members)} {name}")
    return "\n".join(out) + "\n"


# -- Graphviz DOT -------------------------------------------------------------------------------


def dot_quote(text: str) -> str:
    """`text` as a DOT double-quoted string (a backslash, quote or newline escaped)."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\r", "")
    return '"' + escaped.replace("\n", "\\n") + '"'


def _dot_attrs(attrs: Mapping[str, str]) -> str:
    return ", ".join(f"{key}={dot_quote(value)}" for key, value in attrs.items())


def _dot(name: str, title: str, nodes: list[Node], edges: list[Edge]) -> str:
    out = [f"digraph {dot_quote(name)} {{", f"    // {title}", "    rankdir=TB;",
           '    node [fontname="Helvetica", fontsize=11];',
           '    edge [fontname="Helvetica", fontsize=10];']
    colours = {**STATUS_COLOURS, **KIND_COLOURS}
    for node in nodes:
        attrs = {"label": "\n".join(" ".join(line.split()) for line in node.lines),
                 **_DOT_SHAPES[node.kind]}
        styles = [attrs.pop("style")] if "style" in attrs else []
        if node.fill:
            fill, stroke, text = colours[node.fill]
            styles.append("filled")
            attrs.update(fillcolor=fill, color=stroke, fontcolor=text)
        for mark in node.marks:
            extra = dict(MARKS[mark][1])
            if "style" in extra:
                styles.append(extra.pop("style"))
            attrs.update(extra)
        if styles:
            attrs["style"] = ",".join(styles)
        attrs["class"] = " ".join(([node.fill] if node.fill else []) + node.marks)
        if not attrs["class"]:
            del attrs["class"]
        out.append(f"    {dot_quote(node.id)} [{_dot_attrs(attrs)}];")
    for edge in edges:
        attrs = {}
        if edge.label:
            attrs["label"] = " ".join(edge.label.split())
        if edge.dotted:
            attrs["style"] = "dotted"
        suffix = f" [{_dot_attrs(attrs)}]" if attrs else ""
        out.append(f"    {dot_quote(edge.source)} -> {dot_quote(edge.target)}{suffix};")
    out.append("}")
    return "\n".join(out) + "\n"
