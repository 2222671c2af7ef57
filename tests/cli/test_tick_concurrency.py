"""Issue 3, `tick` itself: errors, --limit, its cost over idle runs (the due index), and
concurrency: overlapping ticks, resume racing tick, cancel and tick while a step runs, and
`tick --watch` stopping on a signal. Concurrent commands are real `python -m wfrun` processes.

Racing processes are started pre-imported and held at a gate (a line on stdin), then released
together, so the race covers their file work rather than the interpreter's start-up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from conftest import END_OF_TIME, Project

from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.file import FileStore

T0 = "2026-01-01T00:00:00Z"
LATER = "2026-01-01T01:00:00Z"

_LAUNCHER = """
import sys
import filelock, jsonschema, yaml  # noqa: F401  (what a command imports lazily)
import wfrun.cli, wfrun.engine, wfrun.store.file  # noqa: F401
sys.stdout.write("ready\\n")
sys.stdout.flush()
sys.stdin.readline()
sys.argv = ["wfrun", *sys.argv[1:]]
wfrun.cli.main()
"""

LEDGER_PY = """
import os
import time
from pathlib import Path


def _log(ctx, note=""):
    fd = os.open(ctx.input["ledger"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{ctx.run_id} {ctx.step} {ctx.run.runs} {note}\\n".encode())
    finally:
        os.close(fd)


def _block(ctx):
    Path(ctx.input["started"]).touch()
    deadline = time.monotonic() + 30
    while not os.path.exists(ctx.input["release"]) and time.monotonic() < deadline:
        time.sleep(0.01)


def poll(ctx):
    time.sleep(0.005)
    _log(ctx)
    if ctx.run.runs == 1:
        ctx.flow.rerun("1m", {"n": 1})
    return ctx.run.runs


def callback(ctx):
    request = ctx.run.callback_request
    _log(ctx, "callback" if request else "timer")
    if ctx.run.runs == 1:
        ctx.flow.rerun("1h")
        return None
    return {"via": "callback" if request else "timer", "runs": ctx.run.runs,
            "body": request and request["body"]}


def block(ctx):
    _block(ctx)
    _log(ctx)
    return "blocked and done"


def after(ctx):
    _log(ctx)
    return "after"
"""


class Gated:
    """A wfrun process that has imported everything and waits for `go()`."""

    def __init__(self, project: Project, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _LAUNCHER, *project.base_args(), *args],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=project.root,
        )
        assert self.proc.stdout is not None
        assert self.proc.stdout.readline() == "ready\n"

    def go(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()

    def result(self, timeout: float = 60) -> tuple[int, str, str]:
        out, err = self.proc.communicate(timeout=timeout)
        return self.proc.returncode, out, err


def race(project: Project, *commands: list[str]) -> list[tuple[int, str, str]]:
    procs = [Gated(project, *args) for args in commands]
    for p in procs:
        p.go()
    return [p.result() for p in procs]


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.01)


def ledger_lines(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        return []
    return [(r, s, int(n)) for r, s, n, *_ in (line.split(" ") for line in
                                                path.read_text().splitlines())]


def setup(project: Project, name: str, steps: str) -> Engine:
    project.workflow(name, f"name: {name}\nsteps: {steps}\n", LEDGER_PY)
    return Engine(FileStore(project.state), FakeClock(T0), workflows_dir=str(project.workflows))


def test_tick_reports_a_corrupt_snapshot_and_still_advances_the_others(
        project: Project) -> None:
    """A run's file in the file store damaged by hand: tick names that file and goes on."""
    engine = setup(project, "ledger", "[{id: poll}, {id: after}]")
    ledger = project.root / "ledger.txt"
    for run_id in ("r0", "r1", "r2"):
        engine.start("ledger", {"ledger": str(ledger)}, run_id)
    empty = project.run("tick", "--now", T0, "--json")  # nothing due yet
    assert (empty.code, empty.json(), empty.stderr) == (0, {"advanced": [], "errors": []}, "")
    path = project.state / "runs" / "r1.json"
    damaged = path.read_bytes().replace(b'"poll"', b'"pull"', 1)
    path.write_bytes(damaged)
    out = project.run("tick", "--now", LATER)
    assert out.code == 1
    assert str(path) in out.stderr and "r1" in out.stderr
    assert "r0" in out.stdout and "r2" in out.stdout and "rerun" in out.stdout
    assert "r1" not in out.stdout
    assert path.read_bytes() == damaged  # reported, left untouched
    assert [project.json("show", r)["status"] for r in ("r0", "r2")] == ["completed"] * 2
    again = project.run("tick", "--now", LATER, "--json")
    assert again.code == 1
    [error] = again.json()["errors"]
    assert error["run_id"] == "r1" and str(path) in error["message"]
    assert project.run("show", "r1").code == 5


def test_tick_limit_advances_at_most_n_runs(project: Project) -> None:
    engine = setup(project, "ledger", "[{id: poll}]")
    for run_id in ("a", "b", "c"):
        engine.start("ledger", {"ledger": str(project.root / "ledger")}, run_id)
    assert len(project.json("tick", "--now", LATER, "--limit", "2")["advanced"]) == 2
    assert len(project.json("tick", "--now", LATER)["advanced"]) == 1


def test_tick_with_nothing_due_reads_no_snapshot(project: Project,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The file store's due index: a tick opens no run's file until that run is due."""
    project.workflow("idle", "steps: [{id: gate, wait: true, timeout: 7d}]")
    project.workflow("soon", "steps: [{id: gate, wait: true, timeout: 1h}]")
    with monkeypatch.context() as m:
        m.setattr(os, "fsync", lambda fd: None)  # setup only: durability is not under test
        engine = Engine(FileStore(project.state), FakeClock(T0),
                        workflows_dir=str(project.workflows))
        for _ in range(2000):
            engine.start("idle")
        soon = {engine.start("soon").run.run_id for _ in range(3)}
    loads: list[str] = []
    real_load = FileStore.load

    def counting_load(self: FileStore, run_id: str, known: Any = None) -> Any:
        loads.append(run_id)
        return real_load(self, run_id, known)

    monkeypatch.setattr(FileStore, "load", counting_load)
    real_open = open
    opened: list[str] = []

    def counting_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        if str(file).endswith(".json") and "runs" in str(file):
            opened.append(str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr("builtins.open", counting_open)
    quiet = project.run("tick", "--now", "2026-01-01T00:59:59Z")
    assert (quiet.code, quiet.stdout, loads, opened) == (0, "", [], [])
    assert project.run("tick", "--now", "2026-01-01T00:59:59Z", "--json").json()["advanced"] == []
    assert (loads, opened) == ([], [])
    out = project.run("tick", "--now", "2026-01-01T01:00:00Z", "--json")  # only `soon` is due
    assert {a["run_id"] for a in out.json()["advanced"]} == soon
    assert set(loads) == soon
    assert len(project.store().run_ids()) == 2003


def test_six_ticks_at_once_execute_every_step_attempt_exactly_once(project: Project) -> None:
    engine = setup(project, "ledger", "[{id: poll}, {id: after}]")
    ledger = project.root / "ledger.txt"
    runs = [f"r{i:02d}" for i in range(50)]
    for run_id in runs:
        assert engine.start("ledger", {"ledger": str(ledger)}, run_id).run.status == "waiting"
    results = race(project, *[["tick", "--now", LATER, "--json"]] * 6)
    assert [r[0] for r in results] == [0] * 6, [r[2] for r in results]
    advanced = Counter(a["run_id"] for _, out, _ in results for a in json.loads(out)["advanced"])
    assert advanced == Counter(runs)  # each run advanced by exactly one tick
    lines = ledger_lines(ledger)
    assert [line for line, n in Counter(lines).items() if n > 1] == []
    assert set(lines) == {(r, s, n) for r in runs for s, n in (("poll", 1), ("poll", 2),
                                                                ("after", 1))}
    assert len(lines) == 150
    store = project.store()
    assert {store.load(r).status for r in runs} == {"completed"}
    assert store.due(END_OF_TIME) == []


@pytest.mark.parametrize("round_", range(5))
def test_resume_racing_tick_on_a_rerun_pending_step(project: Project, round_: int) -> None:
    engine = setup(project, "cb", "[{id: callback}, {id: after}]")
    ledger = project.root / "ledger.txt"
    run_id = engine.start("cb", {"ledger": str(ledger)}, f"race{round_}").run.run_id
    due = engine.get(run_id).run.steps["callback"].pause["due_at"]  # type: ignore[index]
    commands = {"resume": ["resume", run_id, "--data", '{"n": 1}', "--json"],
                "tick": ["tick", "--now", due, "--json"]}
    order = ["resume", "tick"] if round_ % 2 == 0 else ["tick", "resume"]  # who is released first
    results = dict(zip(order, race(project, *[commands[k] for k in order]), strict=True))
    resume_rc, tick_rc = results["resume"][0], results["tick"][0]
    assert tick_rc == 0, results["tick"]
    assert resume_rc in (0, 3), results["resume"]
    final = project.json("show", run_id)
    assert final["status"] == "completed"
    step = final["steps"]["callback"]
    assert step["runs"] == 2
    lines = ledger_lines(ledger)
    assert sorted(lines) == [(run_id, "after", 1), (run_id, "callback", 1),
                             (run_id, "callback", 2)]
    if resume_rc == 0:  # the resume was accepted: the rerun carries its callback
        assert step["output"] == {"via": "callback", "runs": 2, "body": {"n": 1}}
    else:  # the timer won: the resume was refused and changed nothing
        assert step["output"] == {"via": "timer", "runs": 2, "body": None}
        assert "resum" in results["resume"][2] or "running" in results["resume"][2]
        assert json.loads(results["tick"][1])["advanced"][0]["reason"] == "rerun"
    assert final["waiting"] == [] and final["steps"]["after"]["status"] == "completed"


def blocking_start(project: Project, run_id: str, name: str = "slow") -> tuple[
        subprocess.Popen[str], dict[str, str]]:
    files = {k: str(project.root / f"{run_id}.{k}") for k in ("ledger", "started", "release")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "start", name,
         "--run-id", run_id, "--input", json.dumps(files), "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    wait_for(lambda: os.path.exists(files["started"]) or proc.poll() is not None)
    assert proc.poll() is None, proc.communicate()
    return proc, files


def test_cancel_while_a_step_runs(project: Project) -> None:
    setup(project, "slow", "[{id: block}, {id: after}]")
    proc, files = blocking_start(project, "c1")
    shown = project.json("show", "c1")  # show works while the step runs
    assert shown["status"] == "running" and shown["steps"]["block"]["status"] == "running"
    cancelled = project.json("cancel", "c1", "--reason", "changed my mind")
    assert cancelled["status"] == "cancelled"
    Path(files["release"]).touch()
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    final = project.json("show", "c1")
    assert final["status"] == "cancelled"
    assert final["steps"]["block"]["status"] == "completed"
    assert final["steps"]["block"]["output"] == "blocked and done"
    assert final["steps"]["after"]["runs"] == 0
    assert final["steps"]["after"]["status"] == "cancelled"
    assert ledger_lines(Path(files["ledger"])) == [("c1", "block", 1)]
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").stdout == ""
    assert ledger_lines(Path(files["ledger"])) == [("c1", "block", 1)]


def test_tick_skips_a_run_a_live_process_executes_and_does_not_wait(project: Project) -> None:
    engine = setup(project, "slow", "[{id: block}, {id: after}]")
    project.workflow("poll", "steps: [{id: poll}]", LEDGER_PY)
    other = project.root / "other.txt"
    engine.start("poll", {"ledger": str(other)}, "other")
    proc, files = blocking_start(project, "busy")
    began = time.monotonic()
    out = project.cli("tick", "--now", "2099-01-01T00:00:00Z", "--json", timeout=15)
    elapsed = time.monotonic() - began
    assert out.code == 0, out.stderr
    assert [(a["run_id"], a["reason"]) for a in out.json()["advanced"]] == [("other", "rerun")]
    assert elapsed < 10
    assert proc.poll() is None  # still blocked in its step, untouched
    busy = project.json("show", "busy")
    assert busy["steps"]["block"]["runs"] == 1
    assert "recovered" not in [e["type"] for e in busy["history"]]
    Path(files["release"]).touch()
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert project.json("show", "busy")["status"] == "completed"
    assert ledger_lines(Path(files["ledger"])) == [("busy", "block", 1), ("busy", "after", 1)]


def test_tick_watch_stops_promptly_on_sigterm(project: Project) -> None:
    engine = setup(project, "poll", "[{id: poll}]")
    ledger = project.root / "ledger.txt"
    engine.start("poll", {"ledger": str(ledger)}, "w1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--watch",
         "--interval", "0.2", "--now", LATER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    try:
        wait_for(lambda: len(ledger_lines(ledger)) == 2)
        time.sleep(0.3)  # a few more (empty) ticks
        assert proc.poll() is None
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=5)
        assert time.monotonic() - sent < 2
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "w1" in out and "rerun" in out
    assert project.json("show", "w1")["status"] == "completed"


def signal_watch_mid_step(project: Project, signum: int) -> tuple[dict[str, Any], Path]:
    """Run `tick --watch`, signal it while a step blocks, release the step; the run after."""
    project.workflow("slow2", "steps: [{id: poll}, {id: block}, {id: after}]", LEDGER_PY)
    files = {k: str(project.root / k) for k in ("ledger", "started", "release")}
    doc = project.json("start", "slow2", "--run-id", "y", "--input", json.dumps(files))
    assert doc["status"] == "waiting"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "tick", "--watch",
         "--interval", "0.2", "--now", "2099-01-01T00:00:00Z"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root)
    try:
        wait_for(lambda: os.path.exists(files["started"]))
        proc.send_signal(signum)
        time.sleep(0.3)
        assert proc.poll() is None  # it does not abandon the step midway
        Path(files["release"]).touch()
        _, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    return project.json("show", "y"), Path(files["ledger"])


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_tick_watch_finishes_the_step_in_progress_before_stopping(project: Project,
                                                                  signum: int) -> None:
    shown, ledger = signal_watch_mid_step(project, signum)
    assert (shown["steps"]["block"]["status"], shown["steps"]["block"]["runs"]) == (
        "completed", 1)
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").code == 0
    final = project.json("show", "y")
    assert final["status"] == "completed"
    assert [n for r, s, n in ledger_lines(ledger) if (r, s) == ("y", "block")] == [1]
    assert final["steps"]["after"]["runs"] == 1


def test_tick_watch_stops_after_the_step_in_progress_not_the_rest_of_the_run(
        project: Project) -> None:
    shown, ledger = signal_watch_mid_step(project, signal.SIGTERM)
    assert ("y", "after", 1) not in ledger_lines(ledger)  # not executed by the stopping watcher
    assert shown["steps"]["after"]["runs"] == 0
    assert project.run("tick", "--now", "2099-01-01T00:00:00Z").code == 0  # the next tick does
    assert ledger_lines(ledger)[-1] == ("y", "after", 1)
    assert project.json("show", "y")["steps"]["after"]["runs"] == 1
