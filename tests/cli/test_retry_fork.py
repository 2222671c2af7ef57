"""`wfrun retry` (a failed run, again from a step, in place) and `wfrun fork` (a new run from a
step, keeping what came before), through the CLI. A ledger file records every execution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from conftest import Project

MANIFEST = """\
name: pipeline
input_schema:
  type: object
  required: [ledger, config]
  properties: {ledger: {type: string}, config: {type: string}, factor: {type: integer}}
steps:
  - id: fetch
  - id: transform
  - id: publish
"""

MODULE = """\
import json


def _note(ctx):
    with open(ctx.input["ledger"], "a") as fh:
        fh.write(ctx.step + "\\n")


def fetch(ctx):
    _note(ctx)
    return {"rows": [1, 2, 3]}


def transform(ctx):
    _note(ctx)
    with open(ctx.input["config"]) as fh:
        config = json.load(fh)
    if config.get("broken"):
        raise ValueError("config says broken")
    factor = ctx.input.get("factor", 2)
    return {"rows": [r * factor for r in ctx.steps["fetch"].output["rows"]]}


def publish(ctx):
    _note(ctx)
    return {"published": ctx.steps["transform"].output["rows"]}
"""


class Pipeline:
    """The pipeline workflow with its ledger and config files."""

    def __init__(self, project: Project, tmp_path: Path, broken: bool) -> None:
        self.project = project
        self.ledger = tmp_path / "ledger.txt"
        self.config = tmp_path / "config.json"
        self.set_broken(broken)
        project.workflow("pipeline", MANIFEST, MODULE)

    def set_broken(self, broken: bool) -> None:
        self.config.write_text(json.dumps({"broken": broken}))

    def input(self, **extra: Any) -> str:
        return json.dumps({"ledger": str(self.ledger), "config": str(self.config), **extra})

    def executed(self) -> list[str]:
        return self.ledger.read_text().splitlines() if self.ledger.exists() else []

    def start(self, run_id: str = "r1") -> dict[str, Any]:
        out = self.project.run("start", "pipeline", "--input", self.input(), "--run-id", run_id,
                               "--json")
        return dict(out.json())


def events(project: Project, run_id: str, *types: str) -> list[dict[str, Any]]:
    return [e for e in project.json("show", run_id)["history"] if e["type"] in types]


def test_retry_re_executes_a_failed_run_from_its_failed_step(
    project: Project, tmp_path: Path
) -> None:
    pipe = Pipeline(project, tmp_path, broken=True)
    doc = pipe.start()
    assert doc["status"] == "failed"
    assert doc["steps"]["publish"]["status"] == "cancelled"
    again = project.run("retry", "r1", "--reason", "still broken?", "--json")
    assert again.code == 1  # it failed again: same exit code as a failing start
    assert again.json()["steps"]["transform"]["runs"] == 2
    pipe.set_broken(False)
    out = project.cli("retry", "r1", "--reason", "fixed the config", "--json")
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["status"] == "completed"
    assert doc["error"] is None
    assert doc["output"] == {"published": [2, 4, 6]}
    assert doc["steps"]["fetch"]["runs"] == 1
    assert doc["steps"]["transform"]["runs"] == 3  # the counter continues
    assert pipe.executed() == ["fetch", "transform", "transform", "transform", "publish"]
    history = events(project, "r1", "failed", "retried", "completed")
    assert [(e["type"], e.get("reason")) for e in history] == [
        ("failed", None), ("retried", "still broken?"), ("failed", None),
        ("retried", "fixed the config"), ("completed", None)]
    assert history[1]["source"] == "cli"
    assert history[1]["step"] == "transform"
    assert history[1]["reset"] == ["transform", "publish"]


def test_retry_after_fixing_the_module(project: Project, tmp_path: Path) -> None:
    project.workflow("buggy", """\
        name: buggy
        steps:
          - id: first
          - id: second
        """, """\
        def first(ctx):
            return 20


        def second(ctx):
            return ctx.steps["first"].output / 0
        """)
    assert project.run("start", "buggy", "--run-id", "b1").code == 1
    (project.workflows / "buggy.py").write_text(
        "def first(ctx):\n    return 20\n\n\ndef second(ctx):\n"
        "    return ctx.steps['first'].output + 1\n")
    out = project.run("retry", "b1", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["output"] == 21
    assert any("changed since run b1 started" in w for w in out.json()["warnings"])


def test_retry_from_an_earlier_step(project: Project, tmp_path: Path) -> None:
    pipe = Pipeline(project, tmp_path, broken=True)
    pipe.start()
    pipe.set_broken(False)
    doc = project.json("retry", "r1", "--step", "fetch")
    assert doc["status"] == "completed"
    assert pipe.executed() == ["fetch", "transform", "fetch", "transform", "publish"]
    assert {s: v["runs"] for s, v in doc["steps"].items()} == {
        "fetch": 2, "transform": 2, "publish": 1}
    [retried] = events(project, "r1", "retried")
    assert retried["step"] == "fetch"
    assert retried["reset"] == ["fetch", "transform", "publish"]


def test_retry_refuses_runs_that_did_not_fail_and_unknown_steps(
    project: Project, tmp_path: Path
) -> None:
    pipe = Pipeline(project, tmp_path, broken=False)
    assert pipe.start()["status"] == "completed"
    out = project.run("retry", "r1")
    assert out.code == 3
    assert "run r1 is completed, not failed" in out.stderr
    assert "wfrun fork r1 --from STEP" in out.stderr
    pipe.set_broken(True)
    assert pipe.start("r2")["status"] == "failed"
    before = project.snapshots()
    out = project.run("retry", "r2", "--step", "nope")
    assert out.code == 4
    assert "run r2 has no step 'nope'" in out.stderr
    assert project.run("retry", "missing").code == 4
    assert project.run("retry", "bad id!").code == 2
    assert project.snapshots() == before


def test_retry_of_a_suspended_run_is_refused(project: Project) -> None:
    project.workflow("waits", """\
        name: waits
        steps:
          - id: approve
            wait: true
        """)
    run_id = project.json("start", "waits")["run_id"]
    out = project.run("retry", run_id, "--step", "approve")
    assert out.code == 3
    assert "is suspended, not failed" in out.stderr


def test_retry_reopens_steps_the_failure_cancelled(project: Project, tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("broken")
    project.workflow("branches", """\
        name: branches
        steps:
          - id: review
            wait: true
            needs: []
          - id: compute
            needs: []
          - id: join
            needs: [review, compute]
        """, f"""\
        def compute(ctx):
            if open({str(flag)!r}).read() == "broken":
                raise RuntimeError("compute broke")
            return 1


        def join(ctx):
            return {{"review": ctx.steps["review"].output, "compute": ctx.steps["compute"].output}}
        """)
    doc = project.run("start", "branches", "--json").json()
    run_id = doc["run_id"]
    assert doc["status"] == "failed"
    assert doc["steps"]["review"]["status"] == "cancelled"  # it was suspended when compute failed
    flag.write_text("fixed")
    doc = project.json("retry", run_id)
    assert doc["status"] == "suspended"  # review waits again
    assert [p["step"] for p in doc["suspended"]] == ["review"]
    assert doc["steps"]["compute"]["output"] == 1
    done = project.json("resume", run_id, "--data", '"ok"')
    assert done["output"] == {"review": "ok", "compute": 1}


def test_retry_keeps_the_answers_of_a_step_that_failed_after_asking(project: Project,
                                                                     tmp_path: Path) -> None:
    flag = tmp_path / "flag"
    flag.write_text("broken")
    project.workflow("ask-fail", """\
        name: ask-fail
        steps:
          - id: decide
        """, f"""\
        def decide(ctx):
            answer = ctx.flow.ask("which?")
            if open({str(flag)!r}).read() == "broken":
                raise RuntimeError("cannot use " + answer)
            return {{"answer": answer}}
        """)
    run_id = project.json("start", "ask-fail")["run_id"]
    assert project.run("resume", run_id, "--data", '"blue"').code == 1
    flag.write_text("fixed")
    doc = project.json("retry", run_id)
    assert doc["status"] == "completed"  # not asked again
    assert doc["output"] == {"answer": "blue"}


def test_fork_from_a_middle_step_keeps_earlier_outputs(project: Project, tmp_path: Path) -> None:
    pipe = Pipeline(project, tmp_path, broken=False)
    pipe.start()
    store = project.store()
    source = (store.load("r1").to_dict(), store.read_history("r1"))
    out = project.run("fork", "r1", "--from", "transform", "--run-id", "r1-again",
                      "--reason", "re-publish", "--json")
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["run_id"] == "r1-again"
    assert doc["status"] == "completed"
    assert doc["steps"]["fetch"]["output"] == {"rows": [1, 2, 3]}
    assert doc["steps"]["fetch"]["runs"] == 1
    assert doc["steps"]["transform"]["runs"] == 1  # a new run: its counters start again
    assert pipe.executed() == ["fetch", "transform", "publish", "transform", "publish"]
    [forked] = events(project, "r1-again", "forked")
    assert (forked["from_run"], forked["from_step"], forked["reason"]) == (
        "r1", "transform", "re-publish")
    assert (store.load("r1").to_dict(), store.read_history("r1")) == source  # untouched
    assert project.json("show", "r1")["status"] == "completed"


def test_fork_with_a_new_input(project: Project, tmp_path: Path) -> None:
    pipe = Pipeline(project, tmp_path, broken=False)
    pipe.start()
    bad = project.run("fork", "r1", "--from", "transform", "--input", '{"factor": 10}')
    assert bad.code == 2  # checked against input_schema: ledger and config are required
    assert "--input for workflow 'pipeline' is not valid" in bad.stderr
    assert [r["run_id"] for r in project.json("list")] == ["r1"]
    doc = project.json("fork", "r1", "--from", "transform", "--input", pipe.input(factor=10))
    assert doc["run_id"] != "r1"
    assert doc["input"]["factor"] == 10
    assert doc["output"] == {"published": [10, 20, 30]}
    assert pipe.executed() == ["fetch", "transform", "publish", "transform", "publish"]


def test_fork_refusals(project: Project, tmp_path: Path) -> None:
    pipe = Pipeline(project, tmp_path, broken=False)
    pipe.start()
    pipe.start("r2")
    before = project.snapshots()
    assert project.run("fork", "r1", "--from", "nope").code == 4
    assert project.run("fork", "missing", "--from", "fetch").code == 4
    taken = project.run("fork", "r1", "--from", "fetch", "--run-id", "r2")
    assert taken.code == 3
    assert "run r2 already exists" in taken.stderr
    assert project.run("fork", "r1", "--from", "fetch", "--run-id", "no way").code == 2
    assert project.run("fork", "r1").code == 2  # --from is required
    assert project.snapshots() == before


def test_fork_of_a_suspended_run(project: Project, tmp_path: Path) -> None:
    ledger = tmp_path / "ledger.txt"
    project.workflow("approve", """\
        name: approve
        steps:
          - id: prepare
          - id: approval
            wait: true
          - id: act
        """, f"""\
        def prepare(ctx):
            with open({str(ledger)!r}, "a") as fh:
                fh.write("prepare\\n")
            return {{"amount": ctx.input.get("amount", 1)}}


        def act(ctx):
            return {{"amount": ctx.steps["prepare"].output["amount"],
                     "approved": ctx.steps["approval"].output}}
        """)
    project.json("start", "approve", "--run-id", "s1", "--input", '{"amount": 5}')
    doc = project.json("fork", "s1", "--from", "approval", "--run-id", "s2")
    assert doc["status"] == "suspended"
    assert [p["step"] for p in doc["suspended"]] == ["approval"]
    assert doc["steps"]["prepare"]["output"] == {"amount": 5}
    assert ledger.read_text().splitlines() == ["prepare"]
    done = project.json("resume", "s2", "--data", "true")
    assert done["output"] == {"amount": 5, "approved": True}
    assert project.json("show", "s1")["status"] == "suspended"  # the source still waits
    # forking from the first step executes everything again, with the new input
    again = project.json("fork", "s1", "--from", "prepare", "--input", '{"amount": 9}')
    assert again["steps"]["prepare"]["output"] == {"amount": 9}
    assert ledger.read_text().splitlines() == ["prepare", "prepare"]
    # a cancelled run can be forked too
    assert project.run("cancel", "s1").code == 0
    revived = project.json("fork", "s1", "--from", "approval", "--run-id", "s3")
    assert revived["status"] == "suspended"
    assert revived["steps"]["prepare"]["output"] == {"amount": 5}
    assert project.json("show", "s1")["status"] == "cancelled"


def test_fork_of_a_failed_run_after_a_fix(project: Project, tmp_path: Path) -> None:
    pipe = Pipeline(project, tmp_path, broken=True)
    pipe.start()
    pipe.set_broken(False)
    doc = project.json("fork", "r1", "--from", "transform", "--run-id", "r1-fixed")
    assert doc["status"] == "completed"
    assert pipe.executed() == ["fetch", "transform", "transform", "publish"]
    assert project.json("show", "r1")["status"] == "failed"


FRAGILE = """\
import os
import signal

MODE = {mode!r}


def work(ctx):
    with open(MODE) as fh:
        mode = fh.read()
    if mode == "fail":
        raise RuntimeError("not yet")
    if mode == "die":  # the process executing the step is killed in the middle of it
        with open(MODE, "w") as fh:
            fh.write("ok")
        os.kill(os.getpid(), signal.SIGKILL)
    return {{"runs": ctx.run.runs}}
"""


def test_a_retry_killed_mid_step_is_recovered_by_tick(project: Project, tmp_path: Path) -> None:
    mode = tmp_path / "mode"
    mode.write_text("fail")
    project.workflow("fragile", "name: fragile\nsteps:\n  - id: work\n",
                     FRAGILE.format(mode=str(mode)))
    assert project.run("start", "fragile", "--run-id", "f1").code == 1
    mode.write_text("die")
    killed = project.cli("retry", "f1", "--reason", "try again")
    assert killed.code == -9
    doc = project.json("show", "f1")
    assert doc["status"] == "running"
    assert any("interrupted" in w for w in doc["warnings"])
    ticked = project.json("tick")
    assert ticked["advanced"] == [{"run_id": "f1", "step": "work", "reason": "recovered",
                                   "status": "completed"}]
    doc = project.json("show", "f1")
    assert doc["output"] == {"runs": 3}  # failed, killed, recovered
    assert [e["type"] for e in doc["history"] if e["type"] in ("retried", "recovered")] == [
        "retried", "recovered"]
