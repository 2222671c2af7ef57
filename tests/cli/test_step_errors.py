"""A failing step shows where the workflow code raised (SPEC §5): in `show`, in the output of
the command that executed it (start, resume, tick) and as `error.traceback` in JSON; a step
waiting for a retry shows the error that caused it."""

from __future__ import annotations

import re
from typing import Any

import pytest
from conftest import Project
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from unit.test_plain_render import NASTY, SAFE, documents, render_both

from wfrun.cli import _plain

MANIFEST = """\
steps:
  - id: prep
  - id: boom
    needs: [prep]
"""
MODULE = """\
import json

from helper import dig


def prep(ctx):
    return {"a": 1}


def boom(ctx):
    if ctx.input.get("json"):
        return json.loads("{nope")
    return dig(ctx.input)
"""
HELPER = """\
def dig(data):
    inner = data
    return inner["missing"]
"""


@pytest.fixture
def boom(project: Project) -> Project:
    project.workflow("boom", MANIFEST, MODULE)
    (project.workflows / "helper.py").write_text(HELPER)
    return project


def _frames(text: str) -> list[tuple[str, int, str]]:
    return [(f, int(n), fn) for f, n, fn in re.findall(r'File "(.*)", line (\d+), in (\S+)', text)]


def test_start_shows_the_file_and_line_of_the_workflow_code_that_raised(boom: Project) -> None:
    out = boom.cli("start", "boom")  # a real process, in the project directory
    assert out.code == 1, out
    lines = out.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "error in step 'boom'" in line)
    assert lines[at].strip() == "error in step 'boom': KeyError: 'missing'"
    assert lines[at + 1:at + 5] == [
        '    File "workflows/boom.py", line 13, in boom',  # relative to the working directory
        "      return dig(ctx.input)",
        '    File "workflows/helper.py", line 3, in dig',
        '      return inner["missing"]',
    ]
    assert "wfrun" + "/engine" not in out.stdout and "^^^" not in out.stdout
    shown = boom.cli("show", re.findall(r"Run (\S+)", out.stdout)[0])
    assert shown.code == 0
    assert '    File "workflows/helper.py", line 3, in dig' in shown.stdout.splitlines()


def test_json_has_error_traceback_with_workflow_frames_only(boom: Project) -> None:
    out = boom.run("start", "boom", "--json")
    assert out.code == 1
    error = out.json()["error"]
    assert (error["step"], error["type"], error["message"]) == ("boom", "KeyError", "'missing'")
    trace = error["traceback"]
    assert _frames(trace) == [(str(boom.workflows / "boom.py"), 13, "boom"),
                              (str(boom.workflows / "helper.py"), 3, "dig")]
    assert trace.endswith("KeyError: 'missing'\n")
    doc = boom.json("show", out.json()["run_id"])
    assert doc["error"] == error and doc["steps"]["boom"]["error"] == error
    failed = [e for e in doc["history"] if e["type"] == "step_failed"]
    assert "wfrun/engine/_execute.py" in failed[0]["traceback"]  # the whole one: in history


def test_a_library_frame_is_left_out_the_step_line_is_the_last(boom: Project) -> None:
    out = boom.run("start", "boom", "--input", '{"json": true}', "--json")
    error = out.json()["error"]
    assert error["type"] == "JSONDecodeError"
    assert _frames(error["traceback"]) == [(str(boom.workflows / "boom.py"), 12, "boom")]


def test_an_async_step_shows_its_own_line_not_asyncio(project: Project) -> None:
    project.workflow("aio", "steps: [{id: a}]\n", """\
        import asyncio


        async def a(ctx):
            await asyncio.sleep(0)
            raise ValueError("async trouble")
        """)
    error = project.run("start", "aio", "--json").json()["error"]
    assert _frames(error["traceback"]) == [(str(project.workflows / "aio.py"), 6, "a")]


def test_deep_recursion_keeps_the_innermost_frames(project: Project) -> None:
    project.workflow("deep", "steps: [{id: a}]\n", """\
        def down(n):
            return down(n + 1)


        def a(ctx):
            return down(0)
        """)
    out = project.run("start", "deep", "--json")
    trace = out.json()["error"]["traceback"]
    assert out.json()["error"]["type"] == "RecursionError"
    assert "earlier frame(s) left out" in trace and "Previous line repeated 2 more" in trace
    assert trace.count("\n") < 20  # 5 frames of a thousand
    human = project.run("show", out.json()["run_id"])
    assert "earlier frame(s) left out" in human.stdout


def test_a_step_waiting_for_a_retry_shows_what_it_raised(project: Project) -> None:
    project.workflow("flaky", """\
        steps:
          - id: call
            retry: {max_attempts: 3, delay: 1m}
        """, """\
        def call(ctx):
            raise ConnectionError(f"attempt {ctx.run.runs} refused")
        """)
    out = project.run("start", "flaky")
    assert out.code == 0
    lines = out.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("⏲ call retry due at"))
    assert lines[at + 1] == "    its last execution raised ConnectionError: attempt 1 refused"
    assert lines[at + 2] == f'      File "{project.workflows / "flaky.py"}", line 2, in call'
    run_id = re.findall(r"Run (\S+)", out.stdout)[0]
    assert "attempt 1 refused" in project.run("show", run_id).stdout
    doc = project.json("show", run_id)
    assert doc["steps"]["call"]["error"]["message"] == "attempt 1 refused"
    assert _frames(doc["steps"]["call"]["error"]["traceback"])[0][1:] == (2, "call")
    ticked = project.run("tick", "--now", doc["waiting"][0]["due_at"])
    assert ticked.code == 0 and "retry -> waiting" in ticked.stdout
    assert (f"warning: run {run_id}: step 'call' raised ConnectionError: attempt 2 refused at "
            f"{project.workflows / 'flaky.py'}:2; it is retried at") in ticked.stderr
    assert f"(wfrun --state-dir {project.state} show {run_id})" in ticked.stderr  # as printed
    last = project.json("show", run_id)["waiting"][0]["due_at"]
    failed = project.run("tick", "--now", last)
    assert failed.code == 1
    assert (f"error: run {run_id} failed: step 'call' raised ConnectionError: attempt 3 refused "
            f"(wfrun --state-dir {project.state} show {run_id})") in failed.stderr
    assert f'    File "{project.workflows / "flaky.py"}", line 2, in call' in failed.stderr


def test_resume_that_fails_shows_where(project: Project) -> None:
    project.workflow("gated", "steps: [{id: gate, wait: true}, {id: after, needs: [gate]}]\n", """\
        def after(ctx):
            return 1 / 0
        """)
    run_id = project.json("start", "gated")["run_id"]
    out = project.run("resume", run_id)
    assert out.code == 1
    assert "error in step 'after': ZeroDivisionError: division by zero" in out.stdout
    assert f'    File "{project.workflows / "gated.py"}", line 2, in after' in out.stdout


def test_an_error_without_traceback_shows_just_its_line(project: Project) -> None:
    project.workflow("bad-out", "steps: [{id: a}]\n", "def a(ctx):\n    return object()\n")
    out = project.run("start", "bad-out")
    assert out.code == 1
    assert "error in step 'a': TypeError" in out.stdout and "File " not in out.stdout
    assert "traceback" not in project.run("start", "bad-out", "--json").json()["error"]


@pytest.fixture
def plain_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*_plain._RICH_ENV, "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@st.composite
def failed_documents(draw: Any) -> dict[str, Any]:
    """Run documents whose error and retry-waiting steps carry tracebacks."""
    doc: dict[str, Any] = draw(documents())
    text = NASTY | SAFE

    def trace() -> str:
        frames = "".join(f'  File "{draw(text)}", line {draw(st.integers(1, 999))}, in '
                         f"{draw(text)}\n    {draw(text)}\n    ^^^^\n"
                         for _ in range(draw(st.integers(0, 3))))
        return f"Traceback (most recent call last, workflow code only):\n{frames}Err: {draw(text)}\n"

    doc["error"] = {"step": draw(SAFE), "type": draw(text), "message": draw(text), "traceback": trace()}
    for sid, step in doc["steps"].items():
        if draw(st.booleans()):
            step["error"] = {"step": sid, "type": "E", "message": draw(text), "traceback": trace()}
            doc["waiting"].append({"step": sid, "kind": "retry", "due_at": "2026-01-01T00:00:00Z",
                                   "runs": 1, "error": step["error"]})
    return doc


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=failed_documents(), width=st.integers(20, 200))
def test_plain_output_of_tracebacks_is_what_rich_prints(doc: dict[str, Any], width: int,
                                                        plain_env: pytest.MonkeyPatch) -> None:
    plain_env.setenv("COLUMNS", str(width))
    plain, rich = render_both(doc, plain_env)
    if plain is not None:
        assert plain == rich


def test_a_failed_foreach_iteration_and_a_failed_child_run_show_where(project: Project) -> None:
    project.workflow("fe", """\
        steps:
          - id: items
          - id: each
            foreach: items
            needs: [items]
        """, """\
        def items(ctx):
            return [1, 2, 0]


        def each(ctx):
            return 10 / ctx.item
        """)
    project.workflow("parent", "steps: [{id: child, workflow: fe}]\n")
    where = f'    File "{project.workflows / "fe.py"}", line 6, in each'
    for name in ("fe", "parent"):
        out = project.run("start", name)
        assert out.code == 1
        assert "ZeroDivisionError" in out.stdout and "iteration 2" in out.stdout
        assert where in out.stdout.splitlines(), out.stdout
        error = project.run("start", name, "--json").json()["error"]
        assert _frames(error["traceback"]) == [(str(project.workflows / "fe.py"), 6, "each")]


ERROR_CASES = {  # workflow: (manifest, module, the error's type)
    "raises": ("steps:\n  - id: a\n", "def a(ctx):\n    raise ValueError('bad')\n", "ValueError"),
    "late": ("steps:\n  - {id: a, wait: true, timeout: 1h, on_timeout: fail}\n", None,
             "TimeoutError"),
    "typed": ("steps:\n  - {id: a, output_schema: {type: integer}}\n",
              "def a(ctx):\n    return 'x'\n", "SchemaViolation"),
    "setty": ("steps:\n  - id: a\n", "def a(ctx):\n    return {1}\n", "TypeError"),
    "caught": ("steps:\n  - id: a\n", "def a(ctx):\n    ctx.flow.suspend()\n    try:\n"
               "        ctx.flow.rerun('1m')\n    except Exception:\n        pass\n", "FlowError"),
    "parent": ("steps:\n  - {id: a, workflow: kid}\n", None, "ChildWorkflowError"),  # input refused
}


def _documented_tracebacks() -> dict[str, bool]:
    """docs/run-document.md's table of errors: whether each `type` has a `traceback`."""
    from conftest import REPO

    found = {}
    for line in (REPO / "docs" / "run-document.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and len(cells) == 3 and cells[1].startswith("`"):
            found[cells[1].strip("`")] = cells[2] != "none"
    return found


@pytest.mark.parametrize("name", sorted(ERROR_CASES))
def test_an_error_has_a_traceback_only_where_the_run_document_page_says(project: Project,
                                                                       name: str) -> None:
    manifest, module, kind = ERROR_CASES[name]
    project.workflow(name, manifest, module)
    project.workflow("kid", "input_schema: {type: object, required: [x]}\nsteps:\n  - {id: k, wait: true}\n")
    out = project.run("start", name, "--run-id", "r1", "--json")
    if name == "late":
        assert out.code == 0
        out = project.run("tick", "--now", "+2h")
    error = project.json("show", "r1")["error"]
    assert error["type"] == kind and error["step"] == "a"
    documented = _documented_tracebacks()
    has_traceback = kind not in documented  # an exception the code raised: the first row
    assert set(error) == {"step", "type", "message"} | ({"traceback"} if has_traceback else set())
    assert documented.get(kind, True) is has_traceback
