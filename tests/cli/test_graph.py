"""`wfrun graph`: every example drawn as well-formed Mermaid and DOT; shapes, `when` labels,
foreach and child workflows; `--run` colours each step by its status; its errors and exit codes."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from conftest import REPO, Outcome, Project
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.graph import mermaid_ids, render
from wfrun.loader import load_workflow

EXAMPLES = sorted(p.stem for p in (REPO / "workflows").glob("*.yaml"))
DOT = shutil.which("dot")

# The lines `wfrun graph` writes in Mermaid, one pattern each: anything else is a bug.
M_NODE = re.compile(r'    (s_\w+)(\[\[|\{\{|\(\[|\[)"([^"]*)"(\]\]|\}\}|\]\)|\])')
M_EDGE = re.compile(r'    (s_\w+) (-->|-\.->)(?:\|"([^"|]*)"\|)? (s_\w+)')
M_CLASSDEF = re.compile(r"    classDef (\w+) [a-z-]+:[^,\s]+( [^,\s]+)?(,[a-z-]+:[^,\s]+)*")
M_CLASS = re.compile(r"    class (s_\w+(?:,s_\w+)*) (\w+)")
M_COMMENT = re.compile(r"    %% [^\n]*")
SHAPES = {"[": "]", "[[": "]]", "{{": "}}", "([": "])"}


class Mermaid:
    """A parsed `wfrun graph` Mermaid text: nodes (id -> (opening, label)), edges, classes."""

    def __init__(self, text: str) -> None:
        lines = text.split("\n")
        assert lines[0] == "flowchart TD" and lines[-1] == "", text
        self.nodes: dict[str, tuple[str, str]] = {}
        self.edges: list[tuple[str, str, str | None, str]] = []  # source, arrow, label, target
        self.defined: set[str] = set()
        self.classes: dict[str, set[str]] = {}
        for line in lines[1:-1]:
            if m := M_NODE.fullmatch(line):
                assert SHAPES[m[2]] == m[4], line
                assert m[1] not in self.nodes, f"declared twice: {line}"
                assert "<" not in m[3].replace("<br/>", "") and ">" not in m[3].replace(
                    "<br/>", ""), line
                self.nodes[m[1]] = (m[2], m[3])
            elif m := M_EDGE.fullmatch(line):
                self.edges.append((m[1], m[2], m[3], m[4]))
            elif m := M_CLASSDEF.fullmatch(line):
                self.defined.add(m[1])
            elif m := M_CLASS.fullmatch(line):
                assert m[2] in self.defined, f"class before its classDef: {line}"
                self.classes.setdefault(m[2], set()).update(m[1].split(","))
            else:
                assert M_COMMENT.fullmatch(line), f"not a line wfrun graph writes: {line!r}"
        for source, _, _, target in self.edges:
            assert source in self.nodes and target in self.nodes, (source, target, self.nodes)
        for members in self.classes.values():
            assert members <= set(self.nodes), members

    def node(self, step: str) -> tuple[str, str]:
        """(shape opening, label) of a step's node."""
        return self.nodes["s_" + step.replace("-", "_")]

    def of(self, step: str) -> set[str]:
        """The classes of a step's node."""
        sid = "s_" + step.replace("-", "_")
        return {name for name, members in self.classes.items() if sid in members}


DOT_TOKEN = re.compile(r'"(?:[^"\\\n]|\\.)*"|[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?|->|[{}\[\];,=]'
                       r"|//[^\n]*|\s+")


class Dot:
    """A checked `wfrun graph --format dot` text: its tokens balance, every id and value is
    quoted or a plain word, every edge joins declared nodes; nodes' attributes by id."""

    def __init__(self, text: str) -> None:
        pos, tokens = 0, []
        while pos < len(text):
            m = DOT_TOKEN.match(text, pos)
            assert m, f"cannot read DOT at {text[pos:pos + 40]!r}"
            if not m[0].isspace() and not m[0].startswith("//"):
                tokens.append(m[0])
            pos = m.end()
        assert tokens[0] == "digraph" and tokens[2] == "{" and tokens[-1] == "}", tokens[:3]
        depth = 0
        for token in tokens:
            depth += {"{": 1, "}": -1, "[": 1, "]": -1}.get(token, 0)
            assert depth >= 0
        assert depth == 0
        self.nodes: dict[str, dict[str, str]] = {}
        self.edges: list[tuple[str, str, dict[str, str]]] = []
        body = " ".join(tokens[3:-1])
        for statement in re.findall(r'((?:"(?:[^"\\]|\\.)*"|[^;"])+);', body):
            words = DOT_TOKEN.findall(statement)
            words = [w for w in words if not w.isspace()]
            if words[0] in ("node", "edge") or (len(words) == 3 and words[1] == "="):
                continue
            attrs = _dot_attrs(words)
            if len(words) > 2 and words[1] == "->":
                assert words[0].startswith('"') and words[2].startswith('"'), statement
                self.edges.append((_unquote(words[0]), _unquote(words[2]), attrs))
            else:
                assert words[0].startswith('"'), statement
                self.nodes[_unquote(words[0])] = attrs
        for source, target, _ in self.edges:
            assert source in self.nodes and target in self.nodes, (source, target)


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], token[1:-1])


def _dot_attrs(words: list[str]) -> dict[str, str]:
    if "[" not in words:
        return {}
    inside = words[words.index("[") + 1:words.index("]")]
    attrs = {}
    for i in range(0, len(inside), 4):  # key = value ,
        key, eq, value = inside[i:i + 3]
        assert eq == "=" and value.startswith('"'), inside
        attrs[key] = _unquote(value)
    return attrs


def graph(*args: str, project: Project | None = None) -> Outcome:
    """`wfrun graph ...` in-process, on the repository's examples or the project's workflows."""
    base = project.base_args() if project else ["--workflows-dir", str(REPO / "workflows")]
    result = CliRunner().invoke(app, [*base, "graph", *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def check_with_graphviz(text: str) -> None:
    """Graphviz itself reads the text without a complaint (when it is installed)."""
    if DOT is None:
        return
    proc = subprocess.run([DOT, "-Tsvg"], input=text, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 0 and not proc.stderr, proc.stderr
    assert proc.stdout.rstrip().endswith("</svg>")


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_draws_as_well_formed_mermaid_and_dot(name: str) -> None:
    """Each example is one node per step and one edge per `needs`, in both formats."""
    workflow = load_workflow(str(REPO / "workflows" / f"{name}.yaml"), check_code=False)
    needs = sum(len(spec.needs) for spec in workflow.steps.values())

    out = graph(name)
    assert out.code == 0 and out.stderr == "", out
    mermaid = Mermaid(out.stdout)
    assert [label.split("<br/>")[0] for _, label in mermaid.nodes.values()] == list(
        workflow.steps)
    assert len([e for e in mermaid.edges if e[1] == "-->"]) == needs

    out = graph(name, "--format", "dot")
    assert out.code == 0 and out.stderr == "", out
    dot = Dot(out.stdout)
    assert list(dot.nodes) == list(workflow.steps)
    assert len([e for e in dot.edges if e[2].get("style") != "dotted"]) == needs
    check_with_graphviz(out.stdout)


def test_expense_approval_when_actions_label_the_branches_and_the_wait_is_a_hexagon() -> None:
    """approved/rejected on the edges to pay/reject; manager-approval drawn as a wait;
    pay's retry: a dashed border and a line saying so."""
    m = Mermaid(graph("expense-approval").stdout)
    assert ("s_manager_approval", "-->", "approved", "s_pay") in m.edges
    assert ("s_manager_approval", "-->", "rejected", "s_reject") in m.edges
    assert ("s_pay", "-->", None, "s_notify") in m.edges
    assert m.node("manager-approval") == ("{{", "manager-approval<br/>wait up to 7d, then cancel")
    assert m.of("manager-approval") == {"wait"}
    assert m.node("submit") == ("[", "submit") and m.of("submit") == set()
    assert m.node("pay") == ("[", "pay<br/>retry: up to 3 attempts")
    assert m.of("pay") == {"retry"}

    d = Dot(graph("expense-approval", "--format", "dot").stdout)
    assert ("manager-approval", "pay", {"label": "approved"}) in d.edges
    assert ("manager-approval", "reject", {"label": "rejected"}) in d.edges
    assert d.nodes["manager-approval"]["shape"] == "hexagon"
    assert d.nodes["manager-approval"]["label"] == "manager-approval\nwait up to 7d, then cancel"
    assert d.nodes["pay"]["style"] == "dashed" and d.nodes["submit"]["shape"] == "box"


def test_a_foreach_child_workflow_step_is_a_thick_double_box_fed_for_each() -> None:
    """batch-approval's review runs approve-item once per element of split's output."""
    m = Mermaid(graph("batch-approval").stdout)
    assert m.node("review") == ("[[", "review<br/>workflow approve-item<br/>for each item of split")
    assert m.of("review") == {"child", "foreach"}
    assert ("s_split", "-->", "for each", "s_review") in m.edges

    d = Dot(graph("batch-approval", "--format", "dot").stdout)
    assert d.nodes["review"]["peripheries"] == "2" and d.nodes["review"]["penwidth"] == "3"
    assert d.nodes["review"]["class"] == "child foreach"
    assert ("split", "review", {"label": "for each"}) in d.edges


def test_sleeps_are_rounded_and_code_that_may_pause_is_not_guessed() -> None:
    """A sleep step says how long; a code step that calls suspend() or rerun() at run time is
    drawn as plain code (that cannot be known from the manifest)."""
    m = Mermaid(graph("delayed-notification").stdout)
    assert m.node("delay") == ("([", "delay<br/>sleep 1h") and m.of("delay") == {"sleep"}
    for name, step in (("suspend-timeout", "request-review"), ("poll-job", "poll"),
                       ("interview", "interview"), ("retry-request", "call-api")):
        m = Mermaid(graph(name).stdout)
        assert m.node(step) == ("[", step) and m.of(step) == set(), (name, m.node(step))
    d = Dot(graph("escalation", "--format", "dot").stdout)
    assert d.nodes["escalation-timer"]["style"] == "rounded,filled"
    assert ("triage", "escalation-timer", {"label": "pending"}) in d.edges


def test_declared_actions_and_labels_are_shown(project: Project) -> None:
    """`actions:` and `label:` are lines of the node and italic text."""
    project.workflow("labelled", """\
        name: labelled
        steps:
          - id: check
            actions: [auto, manual]
          - id: ask
            wait: true
            label: manager
            when: {check: [manual]}
        """, "def check(ctx):\n    return None\n")
    m = Mermaid(graph("labelled", project=project).stdout)
    assert m.node("check") == ("[", "check<br/>actions: auto, manual") and m.of("check") == {
        "named"}
    assert m.node("ask") == ("{{", "ask<br/>wait up to 1d, then cancel<br/>label: manager")
    assert m.of("ask") == {"wait", "named"}
    d = Dot(graph("labelled", "--format", "dot", project=project).stdout)
    assert d.nodes["ask"]["fontname"] == "Helvetica-Oblique"


def test_ids_and_labels_are_escaped(project: Project) -> None:
    """Step ids with '-', ids that meet once '-' is '_', a Mermaid keyword as an id, and
    actions full of quotes, brackets, '#', '|' and backslashes stay valid in both formats."""
    action = 'say "yes" <b>#1</b> | a\\b {x}'
    project.workflow("odd", f"""\
        name: odd
        steps:
          - id: end
            actions: ['{action}', plain]
          - id: a-b
            needs: [end]
            when: {{end: ['{action}']}}
          - id: a_b
            needs: [end]
          - id: x
            needs: [a-b, a_b]
            when: {{end: plain}}
        """, "def end(ctx): pass\ndef a_b(ctx): pass\ndef x(ctx): pass\n")
    out = graph("odd", project=project)
    assert out.code == 0, out
    m = Mermaid(out.stdout)
    assert set(m.nodes) == {"s_end", "s_a_b", "s_a_b_2", "s_x"}
    assert ('    s_end -->|"say #quot;yes#quot; #lt;b#gt;#35;1#lt;/b#gt; #124; a\\b {x}"| s_a_b'
            in out.stdout.split("\n"))
    assert ("s_end", "-.->", "plain", "s_x") in m.edges  # `when:` on a step x does not need
    assert mermaid_ids(["a-b", "a_b", "a_b_2"]) == {"a-b": "s_a_b", "a_b": "s_a_b_3",
                                                    "a_b_2": "s_a_b_2"}

    out = graph("odd", "--format", "dot", project=project)
    d = Dot(out.stdout)
    assert ("end", "a-b", {"label": action}) in d.edges
    assert ("end", "x", {"label": "plain", "style": "dotted"}) in d.edges
    assert d.nodes["end"]["label"] == f"end\nactions: {action}, plain"
    check_with_graphviz(out.stdout)


def _copy_examples(project: Project, *names: str) -> None:
    for name in names:
        for suffix in (".yaml", ".py"):
            shutil.copy(REPO / "workflows" / f"{name}{suffix}", project.workflows)


def test_run_colours_each_step_by_its_status(project: Project) -> None:
    """After a real `wfrun start`, the suspended step has the suspended class; after the
    resume, the branch not taken is skipped and the rest completed."""
    _copy_examples(project, "expense-approval")
    started = project.cli("start", "expense-approval", "--run-id", "exp-1",
                          "--input", '{"user": "ann", "amount": 42}')
    assert started.code == 0, started
    out = project.cli("graph", "expense-approval", "--run", "exp-1")
    assert out.code == 0 and out.stderr == "", out
    m = Mermaid(out.stdout)
    assert m.classes["suspended"] == {"s_manager_approval"}
    assert m.classes["completed"] == {"s_submit"}
    assert m.classes["pending"] == {"s_pay", "s_reject", "s_notify"}
    assert "wait" not in m.classes  # with a run, the fill is the status's
    assert m.of("pay") == {"pending", "retry"}
    assert m.node("manager-approval")[1].endswith("<br/>status: suspended")
    assert "    %% workflow expense-approval, run exp-1: Submit an expense" in out.stdout

    out = project.cli("graph", "expense-approval", "--run", "exp-1", "--format", "dot")
    d = Dot(out.stdout)
    assert d.nodes["manager-approval"]["class"] == "suspended"
    assert d.nodes["manager-approval"]["fillcolor"] != d.nodes["submit"]["fillcolor"]
    check_with_graphviz(out.stdout)

    resumed = project.cli("resume", "exp-1", "--action", "approved", "--data",
                          '{"approved": true}')
    assert resumed.code == 0, resumed
    m = Mermaid(project.cli("graph", "expense-approval", "--run", "exp-1").stdout)
    assert m.classes["skipped"] == {"s_reject"}
    assert m.classes["completed"] == {"s_submit", "s_manager_approval", "s_pay", "s_notify"}
    assert set(m.classes) == {"completed", "skipped", "retry"}


def test_statuses_of_steps_the_run_has_not_reached_are_pending() -> None:
    """The pure renderer: a step missing from the statuses is pending; no format is guessed."""
    workflow = load_workflow(str(REPO / "workflows" / "delayed-notification.yaml"),
                             check_code=False)
    m = Mermaid(render(workflow, {"schedule": "completed", "delay": "waiting"}))
    assert m.classes == {"completed": {"s_schedule"}, "waiting": {"s_delay"},
                         "pending": {"s_send"}}
    with pytest.raises(ValueError, match="svg"):
        render(workflow, None, "svg")


def test_errors_name_what_was_wrong_with_the_exit_codes_of_the_spec(project: Project) -> None:
    """Unknown workflow or run: 4; a run of another workflow, a bad --format or run id: 2."""
    _copy_examples(project, "expense-approval", "delayed-notification")
    out = graph("nope", project=project)
    assert out.code == 4 and "no workflow 'nope'" in out.stderr and out.stdout == ""
    out = graph("expense-approval", "--run", "r-1", project=project)  # no state directory yet
    assert out.code == 4 and "no run r-1" in out.stderr and "does not exist" in out.stderr
    out = graph("expense-approval", "--format", "svg", project=project)
    assert out.code == 2 and "--format 'svg'" in out.stderr and "--format dot" in out.stderr

    started = project.run("start", "delayed-notification", "--run-id", "dn-1",
                          "--input", '{"to": "ann"}')
    assert started.code == 0, started
    out = graph("expense-approval", "--run", "dn-1", project=project)
    assert out.code == 2 and out.stdout == ""
    assert ("run dn-1 is a run of workflow 'delayed-notification', not 'expense-approval'"
            in out.stderr)
    out = graph("expense-approval", "--run", "missing", project=project)
    assert out.code == 4 and "no run missing" in out.stderr
    out = graph("expense-approval", "--run", "bad id", project=project)
    assert out.code == 2 and "invalid run id" in out.stderr


def test_a_run_of_a_changed_workflow_warns_of_steps_no_longer_drawn(project: Project) -> None:
    """A step the run has but the manifest no longer has is named on stderr."""
    _copy_examples(project, "delayed-notification")
    assert project.run("start", "delayed-notification", "--run-id", "dn-2",
                       "--input", '{"to": "ann"}').code == 0
    manifest = project.workflows / "delayed-notification.yaml"
    manifest.write_text(manifest.read_text().replace("  - id: schedule\n", "  - id: plan\n"
                                                     "    handler: schedule\n"))
    out = graph("delayed-notification", "--run", "dn-2", project=project)
    assert out.code == 0
    assert "has steps the workflow no longer has, not drawn: schedule" in out.stderr
    assert Mermaid(out.stdout).of("plan") == {"pending"}


def _json(*args: str, project: Project | None = None) -> dict:
    out = graph(*args, "--json", project=project)
    assert out.code == 0 and out.stderr == "", out
    document: dict = json.loads(out.stdout)  # one document, nothing else
    return document


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_is_a_json_document_of_its_steps_and_edges(name: str) -> None:
    """`--json`: one entry per step in manifest order and one edge per `needs`, as drawn."""
    workflow = load_workflow(str(REPO / "workflows" / f"{name}.yaml"), check_code=False)
    doc = _json(name)
    assert (doc["workflow"], doc["description"], doc["run_id"]) == (
        workflow.name, workflow.description, None)
    assert [(s["id"], s["kind"], s["needs"], s["status"]) for s in doc["steps"]] == [
        (spec.id, spec.kind, list(spec.needs), None) for spec in workflow.steps.values()]
    assert sorted((e["from"], e["to"]) for e in doc["edges"] if e["needs"]) == sorted(
        (need, spec.id) for spec in workflow.steps.values() for need in spec.needs)


def test_the_json_document_says_what_the_drawing_shows() -> None:
    """Kinds, when actions on edges, the wait's timeout, retry, sleep, foreach, child."""
    doc = _json("expense-approval")
    steps = {s["id"]: s for s in doc["steps"]}
    assert steps["manager-approval"] == {
        "id": "manager-approval", "kind": "wait", "needs": ["submit"], "when": {},
        "foreach": None, "workflow": None, "input_from": None, "timeout": "7d",
        "on_timeout": "cancel", "sleep": None, "sleep_until": None, "retry": None,
        "actions": None, "label": None, "status": None}
    assert steps["pay"]["when"] == {"manager-approval": ["approved"]}
    assert steps["pay"]["retry"] == {"max_attempts": 3, "delay": "5s", "backoff": 2.0,
                                     "max_delay": "10m"}
    assert doc["edges"] == [
        {"from": "submit", "to": "manager-approval", "when": None, "foreach": False,
         "needs": True},
        {"from": "manager-approval", "to": "pay", "when": ["approved"], "foreach": False,
         "needs": True},
        {"from": "manager-approval", "to": "reject", "when": ["rejected"], "foreach": False,
         "needs": True},
        {"from": "pay", "to": "notify", "when": None, "foreach": False, "needs": True},
        {"from": "reject", "to": "notify", "when": None, "foreach": False, "needs": True}]

    review = {s["id"]: s for s in _json("batch-approval")["steps"]}["review"]
    assert (review["kind"], review["workflow"], review["foreach"]) == (
        "workflow", "approve-item", "split")
    assert review["timeout"] is None and review["on_timeout"] is None  # (takes none)
    assert {"from": "split", "to": "review", "when": None, "foreach": True, "needs": True} in \
        _json("batch-approval")["edges"]
    delay = {s["id"]: s for s in _json("delayed-notification")["steps"]}["delay"]
    assert (delay["kind"], delay["sleep"], delay["timeout"]) == ("sleep", "1h", None)
    edges = _json("escalation")["edges"]
    assert {"from": "triage", "to": "escalation-timer", "when": ["pending"], "foreach": False,
            "needs": True} in edges


def test_a_when_on_a_step_not_needed_is_an_edge_that_is_no_need(project: Project) -> None:
    """The dotted arrow of the drawing: `needs: false`; declared actions and labels."""
    project.workflow("labelled", """\
        name: labelled
        steps:
          - id: check
            actions: [auto, manual]
          - id: ask
            wait: true
            label: manager
            on_timeout: fail
            when: {check: [manual, auto]}
          - id: after
            needs: [ask]
            when: {check: auto}
        """, "def check(ctx):\n    return None\ndef after(ctx):\n    return None\n")
    doc = _json("labelled", project=project)
    steps = {s["id"]: s for s in doc["steps"]}
    assert (steps["check"]["actions"], steps["check"]["timeout"]) == (["auto", "manual"], "1d")
    assert (steps["ask"]["label"], steps["ask"]["on_timeout"]) == ("manager", "fail")
    assert doc["edges"] == [
        {"from": "check", "to": "ask", "when": ["manual", "auto"], "foreach": False,
         "needs": True},
        {"from": "ask", "to": "after", "when": None, "foreach": False, "needs": True},
        {"from": "check", "to": "after", "when": ["auto"], "foreach": False, "needs": False}]


def test_json_with_run_gives_each_step_its_status(project: Project) -> None:
    """`--run` with `--json`: each step's status in the run (pending until reached), as a
    real process prints it."""
    _copy_examples(project, "expense-approval")
    started = project.cli("start", "expense-approval", "--run-id", "exp-1",
                          "--input", '{"user": "ann", "amount": 42}')
    assert started.code == 0, started
    out = project.cli("graph", "expense-approval", "--run", "exp-1", "--json")
    assert out.code == 0 and out.stderr == "", out
    doc = json.loads(out.stdout)
    assert doc["run_id"] == "exp-1"
    assert {s["id"]: s["status"] for s in doc["steps"]} == {
        "submit": "completed", "manager-approval": "suspended", "pay": "pending",
        "reject": "pending", "notify": "pending"}
    assert project.cli("resume", "exp-1", "--action", "rejected", "--data",
                       '{"approved": false}').code == 0
    doc = project.json("graph", "expense-approval", "--run", "exp-1")
    assert {s["id"]: s["status"] for s in doc["steps"]} == {
        "submit": "completed", "manager-approval": "completed", "pay": "skipped",
        "reject": "completed", "notify": "completed"}


def test_json_and_a_format_are_refused_together() -> None:
    for fmt in ("dot", "mermaid"):
        out = graph("expense-approval", "--json", "--format", fmt)
        assert out.code == 2 and out.stdout == "" and "--json" in out.stderr, out


def test_the_docs_page_shows_the_graph_the_command_prints() -> None:
    """docs/graph.md's rendered ```mermaid block is what `wfrun graph expense-approval`
    prints, so the picture cannot go stale."""
    text = (REPO / "docs" / "graph.md").read_text()
    blocks = re.findall(r"^```mermaid\n(.*?)^```$", text, re.MULTILINE | re.DOTALL)
    assert blocks == [graph("expense-approval").stdout]


def test_graph_is_in_the_help() -> None:
    """`wfrun --help` lists graph; its own help says what the shapes mean."""
    result = CliRunner().invoke(app, ["graph", "--help"])
    assert result.exit_code == 0
    assert "--format" in result.stdout and "hexagon" in result.stdout

