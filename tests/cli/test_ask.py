"""`ctx.flow.ask()`: suspend inside a step; on resume the step executes again and ask returns
the answer. Driven through the CLI; time moves only with `tick --now`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conftest import Project

from .test_examples import as_shell, shift, use

MANIFEST = """\
name: asker
steps:
  - id: interview
    actions: [checked]
  - id: summary
"""

# The ledger counts how often the code before the first ask ran.
MODULE = """\
def interview(ctx):
    with open(ctx.input["ledger"], "a") as fh:
        fh.write("before\\n")
    name = ctx.flow.ask({"question": "name?"}, schema={"type": "string"})
    age = ctx.flow.ask({"question": "age?"}, schema={"type": "integer", "minimum": 0})
    return {"name": name, "age": age}


def summary(ctx):
    step = ctx.steps["interview"]
    return {"resume_data": step.resume_data, "action": step.action, "runs": step.runs}
"""


def start_asker(project: Project, tmp_path: Path) -> tuple[str, Path]:
    project.workflow("asker", MANIFEST, MODULE)
    ledger = tmp_path / "ledger.txt"
    doc = project.json("start", "asker", "--input", f'{{"ledger": "{ledger}"}}')
    return doc["run_id"], ledger


def runs_before_first_ask(ledger: Path) -> int:
    return len(ledger.read_text().splitlines())


def history_types(project: Project, run_id: str) -> list[tuple[str, Any]]:
    events = project.json("show", run_id)["history"]
    return [(e["type"], e.get("ask")) for e in events if e["type"] in ("suspended", "resumed")]


def test_ask_suspends_the_run_with_its_data(project: Project, tmp_path: Path) -> None:
    run_id, ledger = start_asker(project, tmp_path)
    doc = project.json("show", run_id)
    assert doc["status"] == "suspended"
    [pause] = doc["suspended"]
    assert pause["step"] == "interview" and pause["ask"] == 1  # which ask() it waits at
    assert pause["suspend_data"] == {"question": "name?"}
    assert doc["steps"]["interview"]["status"] == "suspended"
    assert doc["steps"]["interview"]["runs"] == 1
    assert doc["steps"]["summary"]["status"] == "pending"
    assert runs_before_first_ask(ledger) == 1
    assert "interview waits for the answer to its ask #1 since" in project.cli("show", run_id).stdout
    assert "interview (ask #1) since" in project.cli("pending").stdout
    [row] = project.json("pending")
    assert row["ask"] == 1
    assert row["resume_schema"] == {"type": "string"}  # the ask's schema is what resume expects
    assert "--data '\"...\"'" in row["resume_command"]  # suggested from the ask's schema
    assert history_types(project, run_id) == [("suspended", 1)]


def test_two_asks_are_answered_in_order_and_the_step_executes_again(
    project: Project, tmp_path: Path
) -> None:
    run_id, ledger = start_asker(project, tmp_path)
    first = project.cli("resume", run_id, "--data", '"ann"', "--json")  # a separate process
    assert first.code == 0, first.stderr
    doc = first.json()
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["suspend_data"] == {"question": "age?"}
    assert doc["suspended"][0]["ask"] == 2
    assert doc["steps"]["interview"]["runs"] == 2
    assert doc["steps"]["interview"]["resume_data"] == "ann"
    assert runs_before_first_ask(ledger) == 2  # the code before the first ask ran again

    done = project.json("resume", run_id, "--data", "42", "--action", "checked")
    assert done["status"] == "completed"
    assert done["steps"]["interview"]["output"] == {"name": "ann", "age": 42}
    assert done["steps"]["interview"]["runs"] == 3
    assert runs_before_first_ask(ledger) == 3
    # the step's exports: resume_data is the latest answer, --action set its action
    assert done["output"] == {"resume_data": 42, "action": "checked", "runs": 3}
    assert history_types(project, run_id) == [
        ("suspended", 1), ("resumed", 1), ("suspended", 2), ("resumed", 2)]


def test_an_answer_that_fails_the_ask_schema_changes_nothing(
    project: Project, tmp_path: Path
) -> None:
    run_id, ledger = start_asker(project, tmp_path)
    assert project.run("resume", run_id, "--data", '"ann"').code == 0
    before = project.snapshots()
    out = project.run("resume", run_id, "--data", "-1")
    assert out.code == 2
    assert "ask #2 of step 'interview'" in out.stderr
    assert "the data must be at least 0, not -1" in out.stderr
    assert project.snapshots() == before
    assert runs_before_first_ask(ledger) == 2  # the step did not execute
    doc = project.json("resume", run_id, "--data", "30")
    assert doc["steps"]["interview"]["output"] == {"name": "ann", "age": 30}


def test_resume_schema_of_the_step_applies_to_every_answer(project: Project) -> None:
    project.workflow("strict", """\
        name: strict
        steps:
          - id: ask
            resume_schema: {type: object, required: [ok]}
        """, """\
        def ask(ctx):
            return ctx.flow.ask("sure?", schema={"type": "object", "required": ["by"]})
        """)
    run_id = project.json("start", "strict")["run_id"]
    [row] = project.json("pending")
    assert row["resume_schema"] == {"allOf": [{"type": "object", "required": ["ok"]},
                                              {"type": "object", "required": ["by"]}]}
    assert project.run("resume", run_id, "--data", '{"by": "bo"}').code == 2
    assert project.run("resume", run_id, "--data", '{"ok": true}').code == 2
    doc = project.json("resume", run_id, "--data", '{"ok": true, "by": "bo"}')
    assert doc["output"] == {"ok": True, "by": "bo"}


def test_an_unanswered_ask_times_out_per_on_timeout(project: Project) -> None:
    project.workflow("timed", """\
        name: timed
        steps:
          - id: poll
            on_timeout: resume
          - id: strict
        """, """\
        def poll(ctx):
            answer = ctx.flow.ask({"q": 1}, timeout="2h")
            return {"answer": answer, "runs": ctx.run.runs}


        def strict(ctx):
            return ctx.flow.ask({"q": 2}, timeout="1h", on_timeout="fail")
        """)
    doc = project.json("start", "timed")
    run_id = doc["run_id"]
    [pause] = doc["suspended"]
    assert pause["on_timeout"] == "resume"
    assert pause["deadline"] == shift(pause["since"], 7200)
    early = project.json("tick", "--now", shift(pause["deadline"], -1))
    assert early["advanced"] == []
    ticked = project.json("tick", "--now", shift(pause["deadline"], 1))
    assert ticked["advanced"] == [{"run_id": run_id, "step": "poll", "reason": "timeout",
                                   "status": "suspended"}]
    doc = project.json("show", run_id)
    assert doc["steps"]["poll"]["output"] == {"answer": None, "runs": 2}  # ask returned None
    [pause] = doc["suspended"]
    assert pause["step"] == "strict" and pause["on_timeout"] == "fail"
    out = project.run("tick", "--now", shift(pause["deadline"], 1))
    assert out.code == 1
    doc = project.json("show", run_id)
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "TimeoutError"


def test_except_exception_cannot_swallow_an_ask(project: Project) -> None:
    project.workflow("swallow", """\
        name: swallow
        steps:
          - id: careful
        """, """\
        def careful(ctx):
            try:
                answer = ctx.flow.ask("go?")
            except Exception:  # a step's own error handling must not eat the suspension
                return "swallowed"
            return {"answer": answer}
        """)
    doc = project.json("start", "swallow")
    assert doc["status"] == "suspended"
    done = project.json("resume", doc["run_id"], "--data", '"yes"')
    assert done["output"] == {"answer": "yes"}


def test_a_step_that_catches_base_exception_still_suspends_at_its_ask(project: Project) -> None:
    project.workflow("greedy", """\
        name: greedy
        steps:
          - id: greedy
        """, """\
        def greedy(ctx):
            answers = []
            for question in ("one?", "two?"):
                try:
                    answers.append(ctx.flow.ask(question))
                except BaseException:  # wrong, but it must not lose or misplace an answer
                    pass
            return answers
        """)
    doc = project.json("start", "greedy")
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["suspend_data"] == "one?"
    doc = project.json("resume", doc["run_id"], "--data", "1")
    assert doc["suspended"][0]["suspend_data"] == "two?"
    assert project.json("resume", doc["run_id"], "--data", "2")["output"] == [1, 2]


def test_async_steps_can_ask(project: Project) -> None:
    project.workflow("async-ask", """\
        name: async-ask
        steps:
          - id: talk
        """, """\
        import asyncio


        async def talk(ctx):
            await asyncio.sleep(0)
            first = ctx.flow.ask("one?")
            second = ctx.flow.ask("two?")
            return [first, second]
        """)
    run_id = project.json("start", "async-ask")["run_id"]
    assert project.json("resume", run_id, "--data", "1")["suspended"][0]["suspend_data"] == "two?"
    assert project.json("resume", run_id, "--data", "2")["output"] == [1, 2]


def test_asking_and_suspending_in_one_execution_fails_the_step(project: Project) -> None:
    project.workflow("mixed", """\
        name: mixed
        steps:
          - id: both
        """, """\
        def both(ctx):
            ctx.flow.suspend(data="first")
            return ctx.flow.ask("then?")
        """)
    out = project.run("start", "mixed", "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["error"]["type"] == "FlowError"
    assert "flow.ask() after flow.suspend()" in doc["error"]["message"]


def test_ask_then_suspend_after_all_answers_suspends_normally(project: Project) -> None:
    project.workflow("then-suspend", """\
        name: then-suspend
        steps:
          - id: step
          - id: after
        """, """\
        def step(ctx):
            answer = ctx.flow.ask("first?")
            ctx.flow.suspend(data={"answer": answer})
            return {"answer": answer}


        def after(ctx):
            return ctx.steps["step"].resume_data
        """)
    run_id = project.json("start", "then-suspend")["run_id"]
    doc = project.json("resume", run_id, "--data", '"a"')
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["suspend_data"] == {"answer": "a"}
    assert "ask" not in doc["suspended"][0]  # a suspend(), not an ask
    done = project.json("resume", run_id, "--data", '"b"')
    assert done["status"] == "completed"
    assert done["steps"]["step"]["runs"] == 2  # a suspend() resume does not execute it again
    assert done["output"] == "b"


def test_a_stale_resume_does_not_answer_the_next_ask(project: Project, tmp_path: Path) -> None:
    from wfrun.clock import SystemClock
    from wfrun.engine import Engine
    from wfrun.errors import ConflictError
    from wfrun.model import Run
    from wfrun.store.file import FileStore

    class StaleFirstRead(FileStore):
        """Its first read returns the run as it was before another process answered it."""

        stale: Run | None = None

        def load(self, run_id: str, known: Run | None = None) -> Run:
            if self.stale is not None:
                run, self.stale = self.stale, None
                return run
            return super().load(run_id, known)

    run_id, _ = start_asker(project, tmp_path)
    store = StaleFirstRead(str(project.state))
    store.stale = store.load(run_id)  # this resume read the run while ask #1 was open...
    assert project.run("resume", run_id, "--data", '"ann"').code == 0  # ...another answered it
    engine = Engine(store, SystemClock(), workflows_dir=str(project.workflows))
    try:
        engine.resume(run_id, 5)
    except ConflictError as exc:
        assert "now waits for the answer to its ask #2" in exc.message
    else:
        raise AssertionError("a resume meant for ask #1 answered ask #2")
    doc = project.json("show", run_id)
    assert doc["steps"]["interview"]["status"] == "suspended"
    assert doc["steps"]["interview"]["resume_data"] == "ann"
    assert doc["suspended"][0]["suspend_data"] == {"question": "age?"}
    assert doc["suspended"][0]["ask"] == 2


def test_ask_data_and_schema_must_be_json(project: Project) -> None:
    project.workflow("bad-ask", """\
        name: bad-ask
        steps:
          - id: data
            needs: []
          - id: schema
            needs: []
        """, """\
        def data(ctx):
            return ctx.flow.ask({"when": {1, 2}})


        def schema(ctx):
            return ctx.flow.ask("x", schema={"type": "strin"})
        """)
    out = project.run("start", "bad-ask", "--json")
    assert out.code == 1
    error = out.json()["error"]
    assert error["step"] == "data" and error["type"] == "TypeError"
    assert "asked with data that is not JSON-serialisable (a dict)" in error["message"]
    project.workflow("bad-ask", """\
        name: bad-ask
        steps:
          - id: schema
        """)
    out = project.run("start", "bad-ask", "--json")
    assert out.code == 1
    assert out.json()["error"]["type"] == "FlowError"
    assert "schema of ask #1: invalid JSON Schema" in out.json()["error"]["message"]


def test_interview_example(project: Project) -> None:
    use(project, "interview")
    doc = project.json("start", "interview", "--input", '{"candidate": "Ada"}')
    run_id = doc["run_id"]
    [pause] = doc["suspended"]
    assert pause["suspend_data"] == {"question": "Which role is Ada applying for?"}
    second = as_shell(project, pause["resume_command"].replace("'\"...\"'", "'\"engineer\"'"))
    assert second.code == 0, second.stderr
    doc = project.json("show", run_id)
    [pause] = doc["suspended"]
    assert "experience does Ada have for engineer" in pause["suspend_data"]["question"]
    assert project.run("resume", run_id, "--data", '"seven"').code == 2
    done = project.json("resume", run_id, "--data", "7")
    assert done["output"] == {"message": "Welcome Ada, senior engineer!"}
    logs = [e["message"] for e in project.json("show", run_id)["history"] if e["type"] == "log"]
    assert logs == [f"interviewing Ada (execution {n})" for n in (1, 2, 3)]


def test_interview_example_times_out_without_asking_again(project: Project) -> None:
    use(project, "interview")
    doc = project.json("start", "interview", "--input", '{"candidate": "Bo"}')
    [pause] = doc["suspended"]
    assert project.run("tick", "--now", shift(pause["deadline"], 60)).code == 0
    done = project.json("show", doc["run_id"])
    assert done["status"] == "completed"
    assert done["output"] == {"message": "No answer for Bo; interview closed."}


def test_an_answered_step_killed_mid_execution_keeps_its_answer(project: Project,
                                                                tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("die")
    project.workflow("killed", """\
        name: killed
        steps:
          - id: step
        """, f"""\
        import os
        import signal


        def step(ctx):
            answer = ctx.flow.ask("go?")
            with open({str(flag)!r}) as fh:
                if fh.read() == "die":
                    with open({str(flag)!r}, "w") as out:
                        out.write("live")
                    os.kill(os.getpid(), signal.SIGKILL)
            return {{"answer": answer, "runs": ctx.run.runs}}
        """)
    run_id = project.json("start", "killed")["run_id"]
    assert project.cli("resume", run_id, "--data", '"yes"').code == -9
    assert project.json("show", run_id)["status"] == "running"
    assert project.run("tick").code == 0
    doc = project.json("show", run_id)
    assert doc["status"] == "completed"
    assert doc["output"] == {"answer": "yes", "runs": 3}  # not asked again after the crash


def test_snapshots_written_before_answers_existed_still_load() -> None:
    from wfrun.model import Run, StepState

    old = {"run_id": "r", "workflow": "w", "input": {}, "created_at": "t", "updated_at": "t",
           "steps": {"s": {"status": "suspended", "runs": 1, "pause": None}}}
    run = Run.from_dict(old)
    assert run.steps["s"].answers == []
    assert StepState().answers is not StepState().answers  # no list shared between steps


ASK_TWICE = """
import os
import time


def s(ctx):
    first = ctx.flow.ask(data={"q": 1})
    open(ctx.input["between"], "w").close()  # answered: now between the two asks
    deadline = time.monotonic() + 20
    while not os.path.exists(ctx.input["go"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    second = ctx.flow.ask(data={"q": 2})
    return [first, second]
"""


def test_a_resume_naming_a_step_between_its_asks_is_refused_not_kept_for_the_next(
        project: Project, tmp_path: Path) -> None:
    import json
    import subprocess
    import sys
    import time

    project.workflow("twice", "steps:\n  - id: s\n", ASK_TWICE)
    between, go = tmp_path / "between", tmp_path / "go"
    data = json.dumps({"between": str(between), "go": str(go)})
    project.json("start", "twice", "--run-id", "q2", "--input", data)
    first = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "resume", "q2", "--data", '"A1"'],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    deadline = time.monotonic() + 20
    while not between.exists():
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = project.run("resume", "q2", "--step", "s", "--data", '"dup"')
    go.touch()
    assert first.wait(timeout=30) == 0, first.communicate()
    assert second.code == 3 and "executing again since its ask #1" in second.stderr
    assert project.json("show", "q2")["status"] == "suspended"  # at the second ask
    done = project.json("resume", "q2", "--data", '"A2"')
    assert done["status"] == "completed" and done["output"] == ["A1", "A2"]
