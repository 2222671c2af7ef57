"""`foreach:` steps, driven through the CLI: outputs in order, iterations that suspend, rerun
or fail on their own, addresses `step[i]`, a child run per element, and the batch-approval
example."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from conftest import REPO, Project

FOREACH = """
    name: fe
    steps:
      - id: items
      - id: each
        foreach: items
        resume_schema: {type: object, required: [ok]}
      - id: total
"""


def fe(project: Project, body: str) -> None:
    project.workflow("fe", FOREACH, f"""
        def items(ctx):
            return ctx.input.get("items", ["a", "b", "c"])

        def each(ctx):
{body}

        def total(ctx):
            return ctx.steps["each"].output
    """)


def start(project: Project, run_id: str = "f1", **input: Any) -> dict[str, Any]:
    out = project.run("start", "fe", "--run-id", run_id, "--input", json.dumps(input), "--json")
    assert out.code in (0, 1), out.stderr
    return dict(out.json())


def test_outputs_are_in_order_with_item_and_index(project: Project) -> None:
    fe(project, "            return f'{ctx.index}:{ctx.item}:{ctx.run.runs}'")
    doc = start(project)
    assert doc["status"] == "completed"
    assert doc["steps"]["each"]["output"] == ["0:a:1", "1:b:1", "2:c:1"]
    assert [it["status"] for it in doc["steps"]["each"]["iterations"]] == ["completed"] * 3
    assert doc["output"] == ["0:a:1", "1:b:1", "2:c:1"]


def test_an_empty_list_gives_an_empty_output(project: Project) -> None:
    fe(project, "            return 1")
    doc = start(project, items=[])
    assert doc["status"] == "completed"
    assert doc["steps"]["each"]["output"] == []


def test_a_suspended_iteration_does_not_hold_back_the_later_ones(project: Project) -> None:
    fe(project, """            if ctx.item == "b":
                ctx.flow.suspend(data={"asks": ctx.item})
            return ctx.item.upper()""")
    doc = start(project)
    assert doc["status"] == "suspended"
    its = doc["steps"]["each"]["iterations"]
    assert [it["status"] for it in its] == ["completed", "suspended", "completed"]
    [entry] = doc["suspended"]
    assert entry["step"] == "each[1]" and entry["path"] == ["each[1]"]
    assert entry["suspend_data"] == {"asks": "b"}
    assert "--step 'each[1]'" in entry["resume_command"]
    rows = project.json("pending")
    assert [(r["run_id"], r["step"]) for r in rows] == [("f1", "each[1]")]
    assert rows[0]["resume_schema"] == {"type": "object", "required": ["ok"]}
    bad = project.run("resume", "f1", "--step", "each[1]", "--data", '{"no": 1}')
    assert bad.code == 2
    assert project.run("resume", "f1", "--step", "each[0]", "--data", '{"ok": 1}').code == 3
    assert project.run("resume", "f1", "--step", "each[7]", "--data", '{"ok": 1}').code == 4
    done = project.json("resume", "f1", "--step", "each[1]", "--data", '{"ok": 1}')
    assert done["status"] == "completed"
    assert done["output"] == ["A", "B", "C"]  # a suspended code step keeps its return value
    assert done["steps"]["each"]["iterations"][1]["resume_data"] == {"ok": 1}
    again = project.run("resume", "f1", "--step", "each[1]", "--data", '{"ok": 1}')
    assert again.code == 3 and "already resumed" in again.stderr


def test_several_suspended_iterations_need_a_step_and_each_resumes_alone(
        project: Project) -> None:
    fe(project, """            if ctx.index > 0:
                ctx.flow.suspend()
            return ctx.index""")
    start(project)
    out = project.run("resume", "f1", "--data", '{"ok": 1}')
    assert out.code == 2
    assert "each[1], each[2]" in out.stderr
    mid = project.json("resume", "f1", "--step", "each[2]", "--data", '{"ok": 2}')
    assert mid["status"] == "suspended"
    assert [e["step"] for e in mid["suspended"]] == ["each[1]"]
    done = project.json("resume", "f1", "--step", "each", "--data", '{"ok": 3}')
    assert done["status"] == "completed"
    assert done["output"] == [0, 1, 2]


def test_iterations_rerun_on_their_own_timers(project: Project) -> None:
    fe(project, """            if ctx.item != "b" and ctx.run.runs < 3:
                ctx.flow.rerun("10s", {"seen": ctx.run.runs})
            return {"item": ctx.item, "runs": ctx.run.runs, "ctx": ctx.run.context}""")
    doc = start(project)
    assert doc["status"] == "waiting"
    assert [w["step"] for w in doc["waiting"]] == ["each[0]", "each[2]"]
    assert doc["steps"]["each"]["iterations"][1]["status"] == "completed"
    first = project.json("tick", "--now", "2030-01-01T00:00:00Z")
    assert {(a["step"], a["reason"]) for a in first["advanced"]} == {
        ("each[0]", "rerun"), ("each[2]", "rerun")}
    project.json("tick", "--now", "2030-01-01T00:01:00Z")
    done = project.json("show", "f1")
    assert done["status"] == "completed"
    assert done["output"] == [
        {"item": "a", "runs": 3, "ctx": {"seen": 2}},
        {"item": "b", "runs": 1, "ctx": None},
        {"item": "c", "runs": 3, "ctx": {"seen": 2}},
    ]


def test_a_rerun_pending_iteration_can_be_resumed_at_once(project: Project) -> None:
    fe(project, """            if ctx.index == 0 and ctx.run.callback_request is None:
                ctx.flow.rerun("1h")
            return (ctx.run.callback_request or {}).get("body")""")
    start(project)
    done = project.json("resume", "f1", "--step", "each[0]", "--data", '{"ok": "now"}')
    assert done["status"] == "completed"
    assert done["output"] == [{"ok": "now"}, None, None]


def test_foreach_over_a_non_list_is_a_clear_step_error(project: Project) -> None:
    fe(project, "            return 1")
    out = project.run("start", "fe", "--input", '{"items": {"a": 1}}', "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["error"]["step"] == "each"
    assert doc["error"]["type"] == "TypeError"
    assert "foreach: items" in doc["error"]["message"]
    assert "a dict, not a list" in doc["error"]["message"]
    number = project.run("start", "fe", "--input", '{"items": 3}', "--json").json()
    assert "whose output is an int, not a list" in number["error"]["message"]


def test_a_failing_iteration_fails_the_step_naming_its_index(project: Project) -> None:
    fe(project, """            if ctx.item == "b":
                raise KeyError("missing price")
            return 1""")
    doc = start(project)
    assert doc["status"] == "failed"
    assert doc["error"]["step"] == "each"
    assert doc["error"]["type"] == "KeyError"
    assert doc["error"]["message"].startswith("iteration 1: ")
    assert [it["status"] for it in doc["steps"]["each"]["iterations"]] == [
        "completed", "failed", "cancelled"]


CHILD = """
    name: approve
    steps:
      - id: approve
        wait: true
        resume_schema: {type: object, required: [ok]}
      - id: result
"""
CHILD_PY = """
    def result(ctx):
        return {"item": ctx.input, "ok": ctx.steps["approve"].output["ok"]}
"""


def test_child_suspended_inside_a_foreach_iteration_is_resumed_by_path(
        project: Project) -> None:
    project.workflow("approve", CHILD, CHILD_PY)
    project.workflow("batch", """
        name: batch
        steps:
          - id: split
          - id: review
            foreach: split
            workflow: approve
          - id: report
    """, """
        def split(ctx):
            return ["x", "y"]

        def report(ctx):
            return [r["ok"] for r in ctx.steps["review"].output]
    """)
    doc = project.json("start", "batch", "--run-id", "b")
    assert doc["status"] == "suspended"
    assert [e["path"] for e in doc["suspended"]] == [["review[0]", "approve"],
                                                      ["review[1]", "approve"]]
    its = doc["steps"]["review"]["iterations"]
    assert [it["child_run_id"] for it in its] == ["b--review-0", "b--review-1"]
    assert project.json("show", "b--review-1")["parent"] == {
        "run_id": "b", "step": "review", "index": 1}
    pending = project.json("pending")
    assert [r["step"] for r in pending] == ["review[0]/approve", "review[1]/approve"]
    mid = project.json("resume", "b", "--step", "review[1]/approve", "--data", '{"ok": "yes"}')
    assert mid["status"] == "suspended"
    assert [e["step"] for e in mid["suspended"]] == ["review[0]/approve"]
    assert mid["steps"]["review"]["iterations"][1]["output"] == {"item": "y", "ok": "yes"}
    done = project.json("resume", "b", "--step", "review[0]/approve", "--data", '{"ok": "no"}')
    assert done["status"] == "completed"
    assert done["output"] == ["no", "yes"]


def test_cancelling_a_foreach_parent_cancels_every_open_child(project: Project) -> None:
    project.workflow("approve", CHILD, CHILD_PY)
    project.workflow("batch", """
        name: batch
        steps:
          - id: split
          - id: review
            foreach: split
            workflow: approve
    """, "def split(ctx):\n    return [1, 2]\n")
    project.json("start", "batch", "--run-id", "b")
    project.json("cancel", "b")
    assert project.json("show", "b--review-0")["status"] == "cancelled"
    assert project.json("show", "b--review-1")["status"] == "cancelled"


def test_batch_approval_example(project: Project) -> None:
    for name in ("batch-approval", "approve-item"):
        for suffix in (".yaml", ".py"):
            shutil.copy(REPO / "workflows" / f"{name}{suffix}", project.workflows / f"{name}{suffix}")
    items = [{"id": "a", "amount": 20}, {"id": "b", "amount": 500}, {"id": "c", "amount": 900}]
    doc = project.json("start", "batch-approval", "--run-id", "b1",
                       "--input", json.dumps({"items": items}))
    assert doc["status"] == "suspended"
    assert [e["step"] for e in doc["suspended"]] == ["review[1]/approve", "review[2]/approve"]
    assert doc["steps"]["review"]["iterations"][0]["output"]["by"] == "auto"
    wrong = project.run("resume", "b1", "--step", "review[5]/approve", "--data", "{}")
    assert wrong.code == 4 and "review[0] to review[2]" in wrong.stderr, wrong.stderr
    project.json("resume", "b1", "--step", "review[1]/approve",
                 "--data", '{"approved": false, "by": "bob"}')
    project.json("resume", "b1--review-2", "--data", '{"approved": true, "by": "eve"}')
    done = project.json("show", "b1")
    assert done["status"] == "completed"
    assert done["output"] == {"approved": ["a", "c"], "rejected": ["b"], "total_approved": 920}


def _ledgered(project: Project) -> Any:
    """`each` notes every execution in a ledger and fails on element 2 the first time."""
    ledger = project.root / "ledger.txt"
    fe(project, f"""            with open({str(ledger)!r}, "a") as fh:
                fh.write(f"{{ctx.item}}\\n")
            with open({str(ledger)!r}) as fh:
                if ctx.item == 2 and fh.read().split().count("2") == 1:
                    raise RuntimeError("card declined")
            return ctx.item * 10""")
    return lambda: ledger.read_text().split()


def test_retry_of_a_failed_foreach_step_executes_only_the_iterations_that_did_not_complete(
    project: Project,
) -> None:
    executions = _ledgered(project)
    doc = start(project, items=[1, 2, 3])
    assert doc["status"] == "failed"
    assert doc["error"]["message"] == "iteration 1: card declined"
    assert [it["status"] for it in doc["steps"]["each"]["iterations"]][:2] == [
        "completed", "failed"]
    assert executions() == ["1", "2"]  # fail fast: element 3 not started
    done = project.json("retry", "f1")
    assert done["status"] == "completed"
    assert done["output"] == [10, 20, 30]
    assert executions() == ["1", "2", "2", "3"]  # element 1 kept its completed iteration
    runs = [it["runs"] for it in done["steps"]["each"]["iterations"]]
    assert runs == [1, 2, 1]


def test_retry_from_the_step_that_makes_the_list_executes_every_iteration_again(
    project: Project,
) -> None:
    executions = _ledgered(project)
    assert start(project, items=[1, 2, 3])["status"] == "failed"
    done = project.json("retry", "f1", "--step", "items")
    assert done["status"] == "completed"
    assert executions() == ["1", "2", "1", "2", "3"]


def test_a_failing_iteration_is_retried_on_its_own(project: Project) -> None:
    project.workflow("fe", FOREACH.replace(
        "        resume_schema: {type: object, required: [ok]}",
        "        retry: {max_attempts: 2, delay: 30s}"), """
        def items(ctx):
            return [1, 2]

        def each(ctx):
            if ctx.item == 1 and ctx.run.runs == 1:
                raise RuntimeError("flaky")
            return ctx.item * ctx.run.runs

        def total(ctx):
            return ctx.steps["each"].output
    """)
    doc = start(project)
    assert doc["status"] == "waiting"
    assert [(w["step"], w["kind"]) for w in doc["waiting"]] == [("each[0]", "retry")]
    assert doc["steps"]["each"]["iterations"][1]["status"] == "completed"
    report = project.json("tick", "--now", "2030-01-01T00:00:00Z")
    assert [(a["step"], a["reason"], a["status"]) for a in report["advanced"]] == [
        ("each[0]", "retry", "completed")]
    assert project.json("show", "f1")["output"] == [2, 2]


def test_an_iteration_suspension_times_out_per_its_on_timeout(project: Project) -> None:
    fe(project, """            if ctx.index == 1:
                ctx.flow.suspend(timeout="1h", on_timeout="resume")
            return ctx.index""")
    doc = start(project)
    deadline = doc["suspended"][0]["deadline"]
    report = project.json("tick", "--now", deadline)
    assert [(a["step"], a["reason"], a["status"]) for a in report["advanced"]] == [
        ("each[1]", "timeout", "completed")]
    assert project.json("show", "f1")["output"] == [0, 1, 2]


def batch(project: Project, child: str, child_py: str) -> None:
    project.workflow("approve", child, child_py)
    project.workflow("batch", """
        name: batch
        steps:
          - id: split
          - id: review
            foreach: split
            workflow: approve
    """, "def split(ctx):\n    return ['x', 'y', 'z']\n")


def test_timers_in_the_children_of_iterations_continue_the_parent(project: Project) -> None:
    batch(project, """
        name: approve
        steps:
          - id: nap
            sleep: 1h
          - id: result
    """, "def result(ctx):\n    return ctx.input.upper()\n")
    doc = project.json("start", "batch", "--run-id", "b")
    assert doc["status"] == "waiting"
    assert [w["step"] for w in doc["waiting"]] == [f"review[{i}]/nap" for i in range(3)]
    report = project.json("tick", "--now", "2030-01-01T00:00:00Z")
    assert ("b", "review[2]", "sleep", "completed") in {
        (a["run_id"], a["step"], a["reason"], a["status"]) for a in report["advanced"]}
    assert project.json("show", "b")["output"] == ["X", "Y", "Z"]


def test_children_of_iterations_resumed_at_the_same_time(project: Project) -> None:
    batch(project, CHILD, CHILD_PY)
    project.json("start", "batch", "--run-id", "b")
    from concurrent.futures import ThreadPoolExecutor

    def resume(i: int) -> int:
        return project.cli("resume", "b", "--step", f"review[{i}]/approve",
                           "--data", json.dumps({"ok": i})).code

    with ThreadPoolExecutor(max_workers=3) as pool:
        codes = list(pool.map(resume, range(3)))
    assert codes == [0, 0, 0]
    doc = project.json("show", "b")
    assert doc["status"] == "completed"
    assert [r["ok"] for r in doc["output"]] == [0, 1, 2]


def test_resuming_an_iteration_while_later_ones_execute_elsewhere(project: Project) -> None:
    import subprocess
    import sys
    import time

    ready, go = project.root / "ready", project.root / "go"
    fe(project, f"""            import os, time
            if ctx.index == 0:
                ctx.flow.suspend()
            if ctx.index == 1:
                open({str(ready)!r}, "w").close()
                for _ in range(400):
                    if os.path.exists({str(go)!r}):
                        break
                    time.sleep(0.025)
            return ctx.index""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "start", "fe", "--run-id", "f1"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(400):
        if ready.exists():
            break
        time.sleep(0.025)
    assert ready.exists()
    mid = project.json("resume", "f1", "--step", "each[0]", "--data", '{"ok": 1}')
    assert mid["steps"]["each"]["status"] == "running"
    assert mid["steps"]["each"]["iterations"][0]["status"] == "completed"
    go.touch()
    assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
    done = project.json("show", "f1")
    assert done["status"] == "completed"
    assert done["output"] == [0, 1, 2]
    assert [it["runs"] for it in done["steps"]["each"]["iterations"]] == [1, 1, 1]


def test_an_iteration_can_ask_and_is_executed_again_with_the_answer(project: Project) -> None:
    fe(project, """            if ctx.index == 1:
                first = ctx.flow.ask({"q": ctx.item}, schema={"required": ["answer"]})
                second = ctx.flow.ask({"again": first["answer"]})
                return f"{ctx.item}:{first['answer']}:{second['ok']}"
            return ctx.item""")
    doc = start(project)
    assert doc["status"] == "suspended"
    [entry] = doc["suspended"]
    assert entry["step"] == "each[1]" and entry["suspend_data"] == {"q": "b"}
    assert entry["ask"] == 1 and project.json("pending")[0]["ask"] == 1
    assert project.json("pending")[0]["resume_schema"] == {
        "allOf": [{"type": "object", "required": ["ok"]}, {"required": ["answer"]}]}
    before = project.snapshots()
    assert project.run("resume", "f1", "--step", "each[1]", "--data", '{"ok": 1}').code == 2
    assert project.snapshots() == before
    mid = project.json("resume", "f1", "--step", "each[1]", "--data", '{"ok": 1, "answer": "y"}')
    assert mid["suspended"][0]["suspend_data"] == {"again": "y"} and mid["suspended"][0]["ask"] == 2
    done = project.json("resume", "f1", "--data", '{"ok": 2}')
    assert done["status"] == "completed"
    assert done["output"] == ["a", "b:y:2", "c"]
    assert done["steps"]["each"]["iterations"][1]["runs"] == 3


def _start_batch_whose_second_charge_fails(project: Project) -> Path:
    """Run b1 of `batch`: a foreach of `charge` child runs, whose second fails the first time."""
    project.workflow("charge", """
        name: charge
        steps:
          - id: pay
    """, """
        import os

        def pay(ctx):
            marker = f"{ctx.input['dir']}/{ctx.input['n']}"
            first = not os.path.exists(marker)
            open(marker, "a").write("x")
            if ctx.input["n"] == 2 and first:
                raise RuntimeError("card declined")
            return ctx.input["n"]
    """)
    project.workflow("batch", """
        name: batch
        steps:
          - id: items
          - id: charge-each
            foreach: items
            workflow: charge
    """, """
        def items(ctx):
            return [{"n": n, "dir": ctx.input["dir"]} for n in (1, 2, 3)]
    """)
    marks = project.root / "marks"
    marks.mkdir()
    out = project.run("start", "batch", "--run-id", "b1", "--input",
                      json.dumps({"dir": str(marks)}), "--json")
    assert out.code == 1 and out.json()["status"] == "failed"
    return marks


def test_retry_of_a_foreach_of_child_runs_starts_a_new_child_only_for_the_failed_element(
    project: Project,
) -> None:
    marks = _start_batch_whose_second_charge_fails(project)
    done = project.json("retry", "b1")
    assert done["status"] == "completed"
    assert done["output"] == [1, 2, 3]
    children = [it["child_run_id"] for it in done["steps"]["charge-each"]["iterations"]]
    assert children == ["b1--charge-each-0", "b1--charge-each-1-r2", "b1--charge-each-2"]
    assert project.json("show", "b1--charge-each-1")["status"] == "failed"  # kept, as it was
    assert {p.name: p.read_text() for p in marks.iterdir()} == {"1": "x", "2": "xx", "3": "x"}


def test_retrying_the_failed_child_run_of_an_iteration_continues_the_foreach(
    project: Project,
) -> None:
    marks = _start_batch_whose_second_charge_fails(project)
    out = project.run("retry", "b1--charge-each-1", "--json")
    assert out.code == 0 and out.json()["status"] == "completed"
    done = project.json("show", "b1")
    assert done["status"] == "completed" and done["output"] == [1, 2, 3]
    children = [it["child_run_id"] for it in done["steps"]["charge-each"]["iterations"]]
    assert children == ["b1--charge-each-0", "b1--charge-each-1", "b1--charge-each-2"]
    assert {p.name: p.read_text() for p in marks.iterdir()} == {"1": "x", "2": "xx", "3": "x"}
