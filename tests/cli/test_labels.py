"""SPEC §2 "Labels" (Mastra's resumeLabel, issue 17 point 3): `label:` on a step,
`suspend(label=)` / `ask(label=)` in code, `wfrun resume RUN --label NAME`, and labels in `show`,
`pending` and the run document.
"""

from __future__ import annotations

import json

import pytest
from conftest import Outcome, Project


def one_line_error(out: Outcome) -> str:
    """The single `error: ...` line a refused command prints on stderr."""
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    return lines[0]


LABELS = """
steps:
  - {id: boss, wait: true, label: boss-ok}
  - {id: legal, wait: true, needs: []}
  - id: code
    needs: []
    label: from-manifest
  - id: asker
    needs: []
  - id: done
    needs: [boss, legal, code, asker]
"""
LABELS_PY = """
def code(ctx):
    ctx.flow.suspend(label=ctx.input.get("code_label"))  # None: the manifest's label: applies
    return "suspended"

def asker(ctx):
    return {"answer": ctx.flow.ask({"q": "why?"}, label="why")}

def done(ctx):
    return sorted(s for s in ctx.steps if s != "done")
"""


def _start(project: Project, **input: str) -> dict:
    project.workflow("labels", LABELS, LABELS_PY)
    doc: dict = project.json("start", "labels", "--input", json.dumps(input), "--run-id", "L1")
    return doc


def test_labels_from_the_manifest_and_from_code_are_in_the_run_document(project: Project) -> None:
    doc = _start(project, code_label="in-code")
    labels = {e["step"]: e["label"] for e in doc["suspended"]}
    assert labels == {"boss": "boss-ok", "legal": None, "code": "in-code", "asker": "why"}
    (project.root / "other").mkdir()
    other = Project(project.root / "other")  # no label= in code: the manifest's label: applies
    other.workflow("labels", LABELS, LABELS_PY)
    doc = other.json("start", "labels")
    assert {e["step"]: e["label"] for e in doc["suspended"]}["code"] == "from-manifest"


def test_labels_appear_in_show_and_pending(project: Project) -> None:
    _start(project, code_label="in-code")
    shown = project.run("show", "L1")
    assert shown.code == 0
    assert "boss (label boss-ok) waits for data since" in shown.stdout
    assert "asker (label why) waits for the answer to its ask #1 since" in shown.stdout
    assert "legal waits for data since" in shown.stdout  # no label, nothing added
    rows = {r["step"]: r for r in project.json("pending")}
    assert {s: r["label"] for s, r in rows.items()} == {
        "boss": "boss-ok", "legal": None, "code": "in-code", "asker": "why"}
    pending = project.run("pending").stdout
    assert "boss (label boss-ok) since" in pending
    assert "asker (ask #1, label why) since" in pending
    assert "legal since" in pending


def test_resume_by_label_needs_no_step(project: Project) -> None:
    _start(project, code_label="in-code")
    doc = project.json("resume", "L1", "--label", "boss-ok", "--data", '{"ok": true}')
    assert doc["steps"]["boss"]["status"] == "completed"
    assert doc["steps"]["boss"]["resume_data"] == {"ok": True}
    doc = project.json("resume", "L1", "--label", "why", "--data", '"because"')  # an ask
    assert doc["steps"]["asker"]["output"] == {"answer": "because"}
    doc = project.json("resume", "L1", "--label", "in-code")
    assert doc["steps"]["code"]["status"] == "completed"
    assert [e["step"] for e in doc["suspended"]] == ["legal"]
    assert project.json("resume", "L1")["status"] == "completed"  # the one left needs no --step


def test_an_unknown_label_is_not_found_naming_the_open_labels(project: Project) -> None:
    _start(project, code_label="in-code")
    before = project.snapshots()
    out = project.run("resume", "L1", "--label", "boss")
    assert out.code == 4
    line = one_line_error(out)
    assert "run L1 has no open suspension labelled 'boss'" in line
    assert "its labels: boss-ok, in-code, why" in line
    assert project.snapshots() == before


def test_a_label_on_several_open_suspensions_is_a_usage_error(project: Project) -> None:
    project.workflow("twice", """
        steps:
          - {id: left, wait: true, label: sign}
          - {id: right, wait: true, label: sign, needs: []}
        """)
    run_id = project.json("start", "twice")["run_id"]
    before = project.snapshots()
    out = project.run("resume", run_id, "--label", "sign")
    assert out.code == 2
    assert "label 'sign' names several open suspensions" in one_line_error(out)
    assert "(left, right); choose one with --step" in out.stderr
    assert project.snapshots() == before
    both = project.run("resume", run_id, "--label", "sign", "--step", "left")
    assert both.code == 2 and "give --step or --label, not both" in one_line_error(both)
    assert project.json("resume", run_id, "--step", "left")["status"] == "suspended"
    assert project.json("resume", run_id, "--label", "sign")["status"] == "completed"


def test_a_run_without_labels_says_so_and_a_finished_one_conflicts(project: Project) -> None:
    project.workflow("plain", "steps:\n  - {id: gate, wait: true}\n")
    run_id = project.json("start", "plain")["run_id"]
    out = project.run("resume", run_id, "--label", "x")
    assert out.code == 4 and "none of its suspensions has a label" in one_line_error(out)
    project.json("resume", run_id)
    finished = project.run("resume", run_id, "--label", "x")
    assert finished.code == 3 and "already resumed" in one_line_error(finished)
    assert project.run("resume", "no-such-run", "--label", "x").code == 4


def test_labels_reach_into_iterations_and_child_runs(project: Project) -> None:
    project.workflow("item", """
        steps:
          - {id: approve, wait: true, label: approve-item}
        """)
    project.workflow("batch", """
        steps:
          - id: items
          - {id: each, foreach: items}
          - {id: child, workflow: item, needs: []}
        """, """
        def items(ctx):
            return ["a", "b"]

        def each(ctx):
            ctx.flow.suspend(label=f"item-{ctx.index}")
            return ctx.item
        """)
    doc = project.json("start", "batch", "--run-id", "B1")
    labels = {e["step"]: e["label"] for e in doc["suspended"]}
    assert labels == {"each[0]": "item-0", "each[1]": "item-1", "child/approve": "approve-item"}
    rows = {r["step"]: r["label"] for r in project.json("pending")}
    assert rows == labels  # the child's suspension is listed once, under its top-level run
    done = project.json("resume", "B1", "--label", "item-1", "--data", '"yes"')
    assert done["steps"]["each"]["iterations"][1]["resume_data"] == "yes"
    done = project.json("resume", "B1", "--label", "approve-item", "--data", '{"ok": 1}')
    assert "child/approve" not in {e["step"] for e in done["suspended"]}
    assert project.json("resume", "B1", "--label", "item-0")["status"] == "completed"


def test_a_label_that_is_not_one_is_a_usage_error(project: Project) -> None:
    _start(project)
    out = project.run("resume", "L1", "--label", "bad label")
    assert out.code == 2
    assert "--label 'bad label' is not a valid label" in one_line_error(out)


def test_resume_without_step_when_only_event_waits_are_open_says_to_send(
        project: Project) -> None:
    project.workflow("two", """
        steps:
          - id: a
          - {id: b, needs: []}
        """, """
def a(ctx):
    ctx.flow.wait_for_event("go")

def b(ctx):
    ctx.flow.wait_for_event("go")
""")
    project.json("start", "two", "--run-id", "t1")
    out = project.run("resume", "t1", "--data", "1")
    assert out.code == 3, out
    assert "run t1 waits for events 'go' (a), 'go' (b), not for a resume; send one with " \
        "'wfrun" in one_line_error(out)
    project.json("send", "t1", "go")  # a takes it: b is left, and a was never resumed
    out = project.run("resume", "t1", "--data", "1")
    assert out.code == 3, out
    assert "step 'b' of run t1 waits for event 'go', not for a resume; send it with 'wfrun" \
        in one_line_error(out)


def test_a_second_resume_by_label_says_when_the_first_was(project: Project) -> None:
    # SPEC §6: a second resume of the same suspension is refused with exit 3, saying when
    _start(project, code_label="in-code")
    project.json("resume", "L1", "--label", "boss-ok", "--data", '{"ok": true}')
    project.json("resume", "L1", "--label", "in-code")
    project.json("resume", "L1", "--label", "why", "--data", '"because"')
    before = project.snapshots()
    for label, step in (("boss-ok", "boss"), ("in-code", "code"), ("why", "asker")):
        again = project.run("resume", "L1", "--label", label, "--data", '{"ok": false}')
        assert again.code == 3, (label, again)
        assert f"step '{step}' (label '{label}') of run L1 was already resumed at " \
            in one_line_error(again)
    assert project.snapshots() == before
    project.workflow("item", "steps:\n  - {id: approve, wait: true, label: approve-item}\n")
    project.workflow("batch", """
        steps:
          - {id: child, workflow: item}
          - {id: last, wait: true}
        """)
    project.json("start", "batch", "--run-id", "B2")
    project.json("resume", "B2", "--label", "approve-item", "--data", '{"ok": 1}')
    again = project.run("resume", "B2", "--label", "approve-item", "--data", '{"ok": 2}')
    assert again.code == 3, again
    assert "step 'child/approve' (label 'approve-item') of run B2 was already resumed" \
        in one_line_error(again)


@pytest.mark.parametrize(("step", "message"), [
    ("{id: gate, wait: true, label: 'no spaces'}", "key 'label': 'no spaces' is not a valid label"),
    ("{id: gate, wait: true, label: 7}", "key 'label': 7 is not a valid label"),
    ("{id: nap, sleep: 1h, label: nap}", "key 'label': does not apply to a sleep step"),
])
def test_an_invalid_label_in_the_manifest_is_refused(project: Project, step: str,
                                                     message: str) -> None:
    project.workflow("bad", f"steps:\n  - {step}\n")
    out = project.run("validate", "bad")
    assert out.code == 2 and message in one_line_error(out)


def test_an_invalid_label_in_code_fails_the_step(project: Project) -> None:
    project.workflow("badcode", "steps:\n  - id: s\n",
                     "def s(ctx):\n    ctx.flow.suspend(label='two words')\n")
    out = project.run("start", "badcode", "--json")
    assert out.code == 1
    error = out.json()["error"]
    assert error["type"] == "FlowError" and "label 'two words' is not valid" in error["message"]
