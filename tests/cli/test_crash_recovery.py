"""Issue 3, crash recovery: a process that dies mid-step is recovered by the next `tick` (the
step executes again, `runs` grows, history says `recovered`); a step running in a live process
is never taken over; `tick` processes SIGKILLed at random moments leave every run readable, in a
legal state, and finishable by one more tick.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import typer.main
import typer.testing
from conftest import END_OF_TIME, Outcome, Project, file_store
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.file import FileStore

T0 = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"
FAR = "2099-01-01T00:00:00Z"

STEPS_PY = """
import os
import time
from pathlib import Path


def _log(ctx):
    path = ctx.input.get("ledger") or os.environ["WFTEST_LEDGER"]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.step} {ctx.run.runs}\\n".encode())
    finally:
        os.close(fd)


def _die_once(ctx):
    marker = Path(ctx.input["marker"])
    if not marker.exists():
        marker.touch()
        os._exit(9)  # the process dies mid-step, as a crash or kill -9 would


def first(ctx):
    _log(ctx)
    return "first"


def boom(ctx):
    _die_once(ctx)
    _log(ctx)
    return {"runs": ctx.run.runs}


def poll(ctx):
    if ctx.run.runs == 1:
        _log(ctx)
        ctx.flow.rerun("1m", {"cursor": "abc"})
        return None
    if "marker" in ctx.input:
        _die_once(ctx)
    _log(ctx)
    return {"runs": ctx.run.runs, "context": ctx.run.context, "callback": ctx.run.callback_request}


def block(ctx):
    Path(ctx.input["started"]).touch()
    deadline = time.monotonic() + 30
    while not os.path.exists(ctx.input["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    _log(ctx)
    return "unblocked"


def after(ctx):
    _log(ctx)
    return "after"
"""


def ledger_lines(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    return [(r, s, int(n)) for r, s, n in (line.split() for line in path.read_text().splitlines())]


def test_a_process_killed_mid_step_is_recovered_by_tick(project: Project) -> None:
    project.workflow("crashy", "steps: [{id: first}, {id: boom}, {id: after}]", STEPS_PY)
    files = {"ledger": str(project.root / "ledger"), "marker": str(project.root / "marker")}
    died = project.cli("start", "crashy", "--run-id", "c1", "--input", json.dumps(files))
    assert died.code == 9, died.stderr
    doc = project.json("show", "c1")
    assert doc["status"] == "running"
    assert doc["steps"]["boom"]["status"] == "running" and doc["steps"]["boom"]["runs"] == 1
    assert any("interrupted" in w for w in doc["warnings"])
    assert project.json("list")[0]["status"] == "running"
    out = project.run("tick", "--now", FAR, "--json")
    assert out.code == 0, out.stderr
    assert out.json() == {"advanced": [{"run_id": "c1", "step": "boom", "reason": "recovered",
                                        "status": "completed"}], "errors": []}
    final = project.json("show", "c1")
    assert final["status"] == "completed"
    assert final["steps"]["boom"]["runs"] == 2
    assert final["steps"]["boom"]["output"] == {"runs": 2}
    assert final["steps"]["first"]["runs"] == 1  # finished steps are not executed again
    assert [(e["type"], e["step"]) for e in final["history"] if e["type"] == "recovered"] == [
        ("recovered", "boom")]
    assert ledger_lines(Path(files["ledger"])) == [("c1", "first", 1), ("c1", "boom", 2),
                                                   ("c1", "after", 1)]
    assert project.run("tick", "--now", FAR).stdout == ""


BRANCHES = """
steps:
  - {id: gate, wait: true, needs: []}
  - {id: boom, needs: []}
  - {id: after, needs: [gate, boom]}
"""


@pytest.mark.parametrize("how", ["resume", "send"])
def test_a_branch_interrupted_by_a_crash_is_recovered_by_a_resume_of_another(
        project: Project, how: str) -> None:
    """The process executing one branch died while another branch waited: the command that
    next claims the run (a resume of the waiting branch, or an event sent to the run) executes
    the interrupted step again as recovered, with runs + 1, not as the same attempt."""
    manifest = BRANCHES if how == "resume" else BRANCHES.replace(
        "{id: gate, wait: true, needs: []}", "{id: gate, needs: []}")
    project.workflow("branches", manifest, STEPS_PY + (
        "" if how == "resume" else "\n\ndef gate(ctx):\n    ctx.flow.wait_for_event('go')\n"))
    files = {"ledger": str(project.root / "ledger"), "marker": str(project.root / "marker")}
    died = project.cli("start", "branches", "--run-id", "b1", "--input", json.dumps(files))
    assert died.code == 9, died.stderr
    assert project.json("show", "b1")["steps"]["boom"]["status"] == "running"
    out = project.cli("resume", "b1", "--step", "gate", "--data", "{}") if how == "resume" \
        else project.cli("send", "b1", "go")
    assert out.code == 0, out.stderr
    final = project.json("show", "b1")
    assert final["status"] == "completed", final
    assert final["steps"]["boom"]["runs"] == 2 and final["steps"]["boom"]["output"] == {"runs": 2}
    assert [(e["type"], e["step"]) for e in final["history"] if e["type"] == "recovered"] == [
        ("recovered", "boom")]
    assert [line[1:] for line in ledger_lines(Path(files["ledger"]))] == [("boom", 2),
                                                                          ("after", 1)]


def test_a_tick_killed_mid_rerun_is_recovered_with_the_rerun_context(project: Project) -> None:
    project.workflow("poller", "steps: [{id: poll}, {id: after}]", STEPS_PY)
    files = {"ledger": str(project.root / "ledger"), "marker": str(project.root / "marker")}
    doc = project.json("start", "poller", "--run-id", "p1", "--input", json.dumps(files))
    due = doc["waiting"][0]["due_at"]
    died = project.cli("tick", "--now", due)
    assert died.code == 9
    doc = project.json("show", "p1")
    assert (doc["status"], doc["steps"]["poll"]["status"], doc["steps"]["poll"]["runs"]) == (
        "running", "running", 2)
    out = project.run("tick", "--now", due, "--json")
    assert [(a["reason"], a["status"]) for a in out.json()["advanced"]] == [
        ("recovered", "completed")]
    final = project.json("show", "p1")
    assert final["steps"]["poll"]["output"] == {"runs": 3, "context": {"cursor": "abc"},
                                                "callback": None}
    assert ledger_lines(Path(files["ledger"])) == [("p1", "poll", 1), ("p1", "poll", 3),
                                                   ("p1", "after", 1)]


def test_a_live_step_is_never_taken_over_but_a_killed_one_is(project: Project) -> None:
    project.workflow("slow", "steps: [{id: block}, {id: after}]", STEPS_PY)
    files = {k: str(project.root / k) for k in ("ledger", "started", "release")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "start", "slow", "--run-id", "k",
         "--input", json.dumps(files)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=project.root)
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(files["started"]):
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr
            time.sleep(0.01)
        for now in ("2026-12-01T00:00:00Z", "2030-01-01T00:00:00Z", FAR):  # however long
            out = project.run("tick", "--now", now, "--json")
            assert (out.code, out.json()["advanced"]) == (0, [])
        doc = project.json("show", "k")
        assert (doc["status"], doc["steps"]["block"]["runs"]) == ("running", 1)
        assert doc["warnings"] == []  # its executor is alive: not reported as interrupted
        assert "recovered" not in [e["type"] for e in doc["history"]]
    finally:
        proc.kill()  # kill -9 while the step is still blocked
        proc.wait(timeout=10)
    assert any("interrupted" in w for w in project.json("show", "k")["warnings"])
    Path(files["release"]).touch()
    out = project.run("tick", "--now", FAR, "--json")
    assert out.json()["advanced"] == [{"run_id": "k", "step": "block", "reason": "recovered",
                                       "status": "completed"}]
    final = project.json("show", "k")
    assert final["steps"]["block"]["runs"] == 2
    assert ledger_lines(Path(files["ledger"])) == [("k", "block", 2), ("k", "after", 1)]


# -- random kill -9 of ticking processes ------------------------------------------------------

_FORK_SERVER = """
import json, os, signal, sys, time
import filelock, jsonschema, yaml  # noqa: F401  (what a command imports lazily)
import typer.main
import typer.testing
import wfrun.cli, wfrun.engine, wfrun.engine.queries, wfrun.store.file  # noqa: F401
command = typer.main.get_command(wfrun.cli.app)
out = sys.stdout
out.write("ready\\n")
out.flush()
for line in sys.stdin:
    request = json.loads(line)
    pids = []
    for args in request["commands"]:
        pid = os.fork()
        if pid == 0:  # a separate process that runs the real CLI and can be killed for real
            code = 1
            try:
                null = os.open(os.devnull, os.O_RDWR)
                for fd in (0, 1, 2):
                    os.dup2(null, fd)
                os.environ.update(request["env"])
                command.main(args=args, prog_name="wfrun")
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
            finally:
                os._exit(code)
        pids.append(pid)
    began = time.monotonic()
    for delay, pid in sorted((d, p) for d, p in zip(request["kill_after"], pids) if d is not None):
        time.sleep(max(0.0, began + delay - time.monotonic()))
        os.kill(pid, signal.SIGKILL)
    codes = [os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) for pid in pids]
    out.write(json.dumps(codes) + "\\n")
    out.flush()
"""

RUNS_PER_TRIAL = 6
TRIALS = 80


def cli(state: Path, workflows: Path, *args: str) -> Outcome:
    """The CLI in-process, like `Project.run`, over any state directory."""
    result = CliRunner().invoke(app, ["--state-dir", str(state), "--workflows-dir",
                                      str(workflows), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    return Outcome(result.exit_code, result.stdout, result.stderr)


def check_legal(doc: dict[str, Any]) -> None:
    """A run of `poll -> first -> after` (a rerun, then plain steps) as ticks can leave it."""
    steps = doc["steps"]
    statuses = [steps[s]["status"] for s in ("poll", "first", "after")]
    if doc["status"] == "waiting":
        assert statuses == ["waiting", "pending", "pending"]
        assert [(w["kind"], w["runs"]) for w in doc["waiting"]] == [("rerun", 1)]
    elif doc["status"] == "running":
        assert statuses.count("running") == 1, statuses
        running = statuses.index("running")
        assert statuses[:running] == ["completed"] * running
        assert statuses[running + 1:] == ["pending"] * (2 - running)
        assert doc["waiting"] == []
    else:
        assert doc["status"] == "completed", doc
        assert statuses == ["completed"] * 3 and doc["output"] == "after"
    assert doc["error"] is None and doc["suspended"] == []
    for sid, state in steps.items():
        assert (state["runs"] >= 1) == (state["status"] != "pending"), (sid, state)


@pytest.mark.slow  # a long trial: CI runs it with -m slow
def test_random_kill9_of_ticks_leaves_every_run_legal_and_finishable(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.workflow("chain", "steps: [{id: poll}, {id: first}, {id: after}]", STEPS_PY)
    template = project.root / "template"
    engine = Engine(FileStore(template), FakeClock(T0), workflows_dir=str(project.workflows))
    monkeypatch.setenv("WFTEST_LEDGER", str(project.root / "setup-ledger"))
    built = typer.main.get_command(app)  # typer rebuilds the command on every invoke (~20 ms)
    monkeypatch.setattr(typer.testing, "_get_command", lambda a: built if a is app else None)
    run_ids = [f"k{i}" for i in range(RUNS_PER_TRIAL)]
    for run_id in run_ids:
        assert engine.start("chain", {}, run_id).run.status == "waiting"
    server = subprocess.Popen([sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, cwd=project.root)
    assert server.stdin is not None and server.stdout is not None
    assert server.stdout.readline() == "ready\n"
    rng = random.Random(os.environ.get("WFTEST_SEED", "kill9"))
    interrupted = recovered = killed = 0
    try:
        for trial in range(TRIALS):
            state = project.root / f"t{trial}"
            shutil.copytree(template, state)
            ledger = project.root / f"ledger{trial}"
            monkeypatch.setenv("WFTEST_LEDGER", str(ledger))
            kills = [rng.uniform(0, 0.05) if rng.random() < 0.8 else None for _ in range(2)]
            args = ["--state-dir", str(state), "--workflows-dir", str(project.workflows),
                    "tick", "--now", LATER]
            server.stdin.write(json.dumps({"commands": [args, args], "kill_after": kills,
                                           "env": {"WFTEST_LEDGER": str(ledger)}}) + "\n")
            server.stdin.flush()
            codes = json.loads(server.stdout.readline())
            assert all(c in (0, -9) for c in codes), (trial, codes)
            killed += codes.count(-9)
            docs = {}
            for run_id in run_ids:
                shown = cli(state, project.workflows, "show", run_id, "--json")
                assert shown.code == 0, (trial, run_id, shown.stderr)
                docs[run_id] = shown.json()
                check_legal(docs[run_id])
            interrupted += any(d["status"] == "running" for d in docs.values())
            lines = ledger_lines(ledger)
            assert [k for k, n in Counter(lines).items() if n > 1] == [], trial
            for run_id, step, runs in lines:
                assert runs <= docs[run_id]["steps"][step]["runs"], (trial, run_id, step)
            final = cli(state, project.workflows, "tick", "--now", LATER, "--json")
            assert final.code == 0, (trial, final.stderr)
            recovered += sum(a["reason"] == "recovered" for a in final.json()["advanced"])
            lines = ledger_lines(ledger)
            assert [k for k, n in Counter(lines).items() if n > 1] == [], trial
            for run_id in run_ids:
                doc = cli(state, project.workflows, "show", run_id, "--json").json()
                assert doc["status"] == "completed", (trial, run_id, doc["status"])
                for step in ("poll", "first", "after"):
                    attempts = [n for r, s, n in lines if (r, s) == (run_id, step)]
                    assert max(attempts) == doc["steps"][step]["runs"], (trial, run_id, step)
                restarts = doc["steps"]["poll"]["runs"] - 2 + sum(
                    doc["steps"][s]["runs"] - 1 for s in ("first", "after"))
                # History is appended after the snapshot write, so a process killed between
                # the two loses its events: never more `recovered` events than re-executions.
                assert sum(e["type"] == "recovered" for e in doc["history"]) <= restarts
            assert file_store(state).due(END_OF_TIME) == [], trial
            shutil.rmtree(state)
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    # The trials really interrupted work in progress (not only idle or finished processes).
    assert killed >= TRIALS // 2
    assert interrupted >= 5 and recovered >= 5, (interrupted, recovered)
