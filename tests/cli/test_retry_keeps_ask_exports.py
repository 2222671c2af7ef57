"""`wfrun retry` of a step that failed after its asks were answered: it keeps its answers (it
is not asked again) and with them its exports, `resume_data` (the latest answer) and
`suspend_data` (the latest ask's data), as the automatic retries of `retry:` do."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Project


def _asker(project: Project, flag: Path) -> None:
    project.workflow("ask-twice", """\
        name: ask-twice
        steps:
          - id: decide
            retry: {max_attempts: 3, delay: 1m}
          - id: after
        """, f"""\
        import os


        def decide(ctx):
            colour = ctx.flow.ask({{"q": "colour?"}})
            size = ctx.flow.ask({{"q": "size?", "colour": colour}})
            if not os.path.exists({str(flag)!r}):
                raise RuntimeError("not yet")
            return {{"colour": colour, "size": size}}


        def after(ctx):
            step = ctx.steps["decide"]
            return {{"resume_data": step.resume_data, "suspend_data": step.suspend_data}}
        """)


def _answered(project: Project) -> str:
    run_id: str = project.json("start", "ask-twice")["run_id"]
    assert project.run("resume", run_id, "--data", '"blue"').code == 0
    assert project.run("resume", run_id, "--data", '"L"').code == 0  # fails: retried in 1m
    return run_id


def _exports(doc: dict[str, Any]) -> tuple[Any, Any]:
    step = doc["steps"]["decide"]
    return step["resume_data"], step["suspend_data"]


EXPECTED = ("L", {"q": "size?", "colour": "blue"})


def test_the_automatic_retry_keeps_the_latest_answer_and_ask_data(project: Project,
                                                                  tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    _asker(project, flag)
    run_id = _answered(project)
    flag.write_text("ok")
    assert project.run("tick", "--now", "+2m").code == 0
    doc = project.json("show", run_id)
    assert doc["status"] == "completed"
    assert _exports(doc) == EXPECTED
    assert doc["output"] == {"resume_data": "L", "suspend_data": EXPECTED[1]}


def test_cli_retry_keeps_the_latest_answer_and_ask_data(project: Project,
                                                        tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    _asker(project, flag)
    run_id = _answered(project)
    assert project.run("tick", "--now", "+2m").code == 0
    assert project.run("tick", "--now", "+4m").code == 1
    failed = project.json("show", run_id)
    assert failed["status"] == "failed"
    assert _exports(failed) == EXPECTED
    flag.write_text("ok")
    doc = project.json("retry", run_id)
    assert doc["status"] == "completed"  # not asked again
    assert doc["steps"]["decide"]["output"] == {"colour": "blue", "size": "L"}
    assert _exports(doc) == EXPECTED
    assert doc["output"] == {"resume_data": "L", "suspend_data": EXPECTED[1]}


def test_cli_retry_keeps_the_exports_of_a_foreach_iteration_that_asked(project: Project,
                                                                       tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    project.workflow("fe", """\
        name: fe
        steps:
          - id: items
          - id: each
            foreach: items
        """, f"""\
        import os


        def items(ctx):
            return ["a", "b"]


        def each(ctx):
            if ctx.index == 1:
                answer = ctx.flow.ask({{"q": ctx.item}})
                if not os.path.exists({str(flag)!r}):
                    raise RuntimeError("not yet")
                return answer
            return ctx.item
        """)
    run_id = project.json("start", "fe")["run_id"]
    assert project.run("resume", run_id, "--step", "each[1]", "--data", '"yes"').code == 1
    flag.write_text("ok")
    doc = project.json("retry", run_id)
    assert doc["status"] == "completed" and doc["output"] == ["a", "yes"]
    iteration = doc["steps"]["each"]["iterations"][1]
    assert (iteration["resume_data"], iteration["suspend_data"]) == ("yes", {"q": "b"})
