"""`ctx.flow.exit()` in a foreach iteration ends the run as completed after it (SPEC §2): the
iteration completes with its return value, the foreach step completes with the iterations'
outputs so far (null for those not run), iterations not started are skipped, paused ones are
cancelled with their timers, and the run's output is what a completed run's would be."""

from __future__ import annotations

import json
from typing import Any

from conftest import Project


def _workflow(project: Project, output: str = "") -> None:
    project.workflow("fe", f"""\
        name: fe
        {output}
        steps:
          - id: items
          - id: each
            foreach: items
          - id: after
        """, """\
        def items(ctx):
            return ctx.input["v"]


        def each(ctx):
            if ctx.item == "exit":
                ctx.flow.exit("bye")
                return "exited"
            if ctx.item == "wait":
                ctx.flow.suspend()
                return "waiting"
            if ctx.item == "nap":
                ctx.flow.rerun("1h", {"cursor": 1})
                return "napping"
            return ctx.item


        def after(ctx):
            return "after"
        """)


def _start(project: Project, items: list[Any], run_id: str = "fe1") -> dict[str, Any]:
    return dict(project.json("start", "fe", "--run-id", run_id,
                             "--input", json.dumps({"v": items})))


def _iterations(doc: dict[str, Any]) -> list[tuple[str, Any]]:
    return [(it["status"], it["output"]) for it in doc["steps"]["each"]["iterations"]]


def test_exit_in_an_iteration_completes_the_foreach_step_and_the_run(project: Project) -> None:
    _workflow(project)
    doc = _start(project, [1, "exit", 3])
    assert doc["status"] == "completed"
    each = doc["steps"]["each"]
    assert (each["status"], each["output"]) == ("completed", [1, "exited", None])
    assert _iterations(doc) == [("completed", 1), ("completed", "exited"), ("skipped", None)]
    assert doc["steps"]["after"]["status"] == "skipped"
    assert doc["output"] == [1, "exited", None]  # the last completed step's, as ever
    history = project.json("show", "fe1")["history"]
    done = [e for e in history if e["type"] == "completed"]
    assert [(e["step"], e.get("reason")) for e in done] == [("each[1]", "bye")]


def test_the_run_output_names_the_foreach_step_after_an_exit(project: Project) -> None:
    _workflow(project, "output: each")
    assert _start(project, ["exit", 2])["output"] == ["exited", None]


def test_exit_cancels_the_paused_iterations_and_leaves_no_timer(project: Project) -> None:
    _workflow(project)
    doc = _start(project, ["wait", "nap", 1, "exit", 3])
    assert doc["status"] == "completed"
    assert _iterations(doc) == [("cancelled", "waiting"), ("cancelled", "napping"),
                                ("completed", 1), ("completed", "exited"), ("skipped", None)]
    assert doc["steps"]["each"]["output"] == ["waiting", "napping", 1, "exited", None]
    assert (doc["suspended"], doc["waiting"]) == ([], [])
    assert [r["next_due"] for r in project.json("list")] == [None]
    assert project.json("pending") == []
    ticked = project.json("tick", "--now", "+2d")
    assert ticked["advanced"] == [] and ticked["errors"] == []
    refused = project.run("resume", "fe1", "--step", "each[0]")
    assert refused.code == 3


def test_exit_after_an_iteration_is_answered(project: Project) -> None:
    project.workflow("asks", """\
        name: asks
        steps:
          - id: items
          - id: each
            foreach: items
        """, """\
        def items(ctx):
            return ["a", "b", "c"]


        def each(ctx):
            if ctx.index == 0 and ctx.flow.ask({"q": "stop?"}) == "stop":
                ctx.flow.exit("asked to stop")
            return ctx.item
        """)
    started = project.json("start", "asks", "--run-id", "a1")
    assert started["status"] == "suspended"
    doc = project.json("resume", "a1", "--step", "each[0]", "--data", '"stop"')
    assert doc["status"] == "completed"
    assert _iterations(doc) == [("completed", "a"), ("completed", "b"), ("completed", "c")]
    assert doc["steps"]["each"]["status"] == "completed"
    assert doc["output"] == ["a", "b", "c"]
