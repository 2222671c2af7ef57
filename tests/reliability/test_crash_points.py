"""Enumerated crash points: the N-th file operation of a command kills it or fails with ENOSPC/EIO.

For each command (start, resume, cancel, and tick firing each kind of timer) a fault-free
reference run records every snapshot version the command writes. Then for N = 1, 2, ... the
command runs as its own process with `WFRUN_FAULT=kill@N` (and `enospc@N`, `eio@N`) until it
completes without reaching the fault. After each faulted run: every snapshot parses and
verifies (`show --json` exits 0), the run is in one of the states the reference went through
(old or new, never between), temporary files are never listed as runs, and the next command
finishes the run. A disk error leaves exactly the state a crash at that instant leaves, with
one `error:` line naming the file, and no traceback.
"""

from __future__ import annotations

import ast
import errno
import json
import os
import queue
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from wfrun.errors import StateError
from wfrun.model import Run
from wfrun.store import _fsops
from wfrun.store.file import FileStore

from ._relutil import (
    REPO,
    Lab,
    Result,
    Warm,
    assert_no_attempt_twice,
    check_error_output,
    copy_state,
    future,
    load,
    load_all,
    norm,
    norm_snapshot,
    precreate_buckets,
    snapshot_ids,
    temp_files,
)

NOW = future()
RESUME = ["resume", "r1", "--data", json.dumps({"token": "t1"})]


@dataclass
class Scenario:
    name: str
    prepare: list[list[str]]  # commands that bring the template run to its "before" state
    command: list[str]  # the command whose file operations are enumerated
    final: str  # the run's status once finished
    again_ok: tuple[int, ...] = (0,)  # exit codes of the same command run again afterwards
    token: str | None = None  # resume_data token the finished run must hold


SCENARIOS = [
    Scenario("start", [], ["start", "flow", "--run-id", "r1", "--json"], "completed",
             token="finisher"),
    Scenario("resume", [["start", "flow", "--run-id", "r1"]], RESUME, "completed", (0, 3), "t1"),
    Scenario("cancel", [["start", "flow", "--run-id", "r1"]], ["cancel", "r1"], "cancelled",
             (0, 3)),
    Scenario("tick-rerun", [["start", "poll", "--run-id", "r1"]], ["tick", "--now", NOW],
             "completed"),
    Scenario("tick-sleep", [["start", "nap", "--run-id", "r1"]], ["tick", "--now", NOW],
             "completed"),
    Scenario("tick-retry", [["start", "flaky", "--run-id", "r1"]], ["tick", "--now", NOW],
             "completed"),
    Scenario("tick-timeout", [["start", "lapse", "--run-id", "r1"]], ["tick", "--now", NOW],
             "completed"),
]


def _reference(lab: Lab, sc: Scenario, template: Path) -> tuple[set[tuple[Any, ...]], Run]:
    """Run the command without faults, recording every snapshot version it writes."""
    ref = lab.root / "reference"
    copy_state(template, ref)
    record = lab.root / "reference.writes"
    lab.ok(ref, *sc.command, record=str(record))
    allowed = set()
    if template.exists():
        allowed.add(norm(load(template, "r1")))
    for line in record.read_text().splitlines():
        write = json.loads(line)
        if write["path"].endswith(("/runs/r1.json", "/locks/r1.exec")):  # durable or started
            allowed.add(norm_snapshot(write["data"]))
    after = load(ref, "r1")
    assert norm(after) in allowed
    return allowed, after


def _check_state(lab: Lab, state: Path, allowed: set[tuple[Any, ...]]) -> tuple[Any, ...] | None:
    """Snapshots verify, the run is in a state the reference went through, temp files are inert."""
    runs = load_all(state)
    assert set(runs) <= {"r1"}, set(runs)
    for run_id in runs:
        shown = lab.cmd(state, "show", run_id, "--json")
        assert shown.rc == 0 and shown.json()["run_id"] == run_id, shown
    listed = lab.cmd(state, "list", "--json")
    assert listed.rc == 0, listed
    assert {row["run_id"] for row in listed.json()} == snapshot_ids(state) == set(runs)
    for tmp in temp_files(state):
        assert tmp.parent.name in ("runs", "keys"), tmp
    if not runs:
        return None
    state_now = norm(runs["r1"])
    assert state_now in allowed, f"torn or unknown state {state_now}; allowed: {allowed}"
    return state_now


def _continue(lab: Lab, sc: Scenario, state: Path) -> None:
    """The same command again succeeds (or says it already happened); then the run finishes."""
    again = lab.cmd(state, *sc.command)
    assert again.rc in sc.again_ok, (sc.name, again)
    assert "Traceback" not in again.stderr
    run = lab.finish(state, "r1", now=NOW)
    assert run.status == sc.final, (sc.name, run.status, run.error)
    if sc.token is not None:
        assert run.steps["approve"].resume_data == {"token": sc.token}
        assert {note for r, s, _, note in assert_no_attempt_twice(state) if s == "b"} == {sc.token}
    assert_no_attempt_twice(state)


def _enumerate(lab: Lab, sc: Scenario, template: Path, kind: str,
               allowed: set[tuple[Any, ...]], after: Run) -> dict[int, Any]:
    seen: dict[int, Any] = {}
    for n in range(1, 200):
        state = lab.root / f"{kind}-{n}"
        copy_state(template, state)
        out = lab.cmd(state, *sc.command, env={"WFRUN_FAULT": f"{kind}@{n}"})
        if out.rc == 0:  # the command has fewer than n file operations: done
            assert norm(load(state, "r1")) == norm(after)
            assert n > 3, f"{sc.name}: only {n - 1} file operations?"
            return seen
        if kind == "kill":
            assert out.rc == 137, (n, out)
        else:
            _check_disk_error(out, state, sc, kind, n)
        seen[n] = _check_state(lab, state, allowed)
        _continue(lab, sc, state)
    raise AssertionError(f"{sc.name}: {kind}@N never completed")


def _check_disk_error(out: Result, state: Path, sc: Scenario, kind: str, n: int) -> None:
    # tick keeps going with the other runs and reports each run it could not advance: exit 1
    expected = (1, 5) if sc.command[0] == "tick" else (5,)
    assert out.rc in expected, (sc.name, n, out)
    line = check_error_output(out, state)
    assert os.strerror(errno.ENOSPC if kind == "enospc" else errno.EIO) in line, line
    op = line.split("injected at ")[1].split()[0]
    if op in ("write", "fsync", "link", "replace"):  # failed before the rename: nothing left
        assert not [t for t in temp_files(state) if t.parent.name == "runs"], temp_files(state)
    if "cannot write snapshot" in line:  # and it says which state the file holds
        kept = ("the previous state is intact", "the new state is in place")
        assert any(k in line for k in (kept if op == "dirsync" else kept[:1])), line


# tick's scenarios are long trials: the default suite runs start, resume and cancel; CI runs all
@pytest.mark.parametrize("sc", [
    pytest.param(sc, id=sc.name, marks=[pytest.mark.slow] if sc.name.startswith("tick") else [])
    for sc in SCENARIOS])
def test_every_crash_point(lab: Lab, warm_pool: list[Warm], sc: Scenario) -> None:
    template = lab.root / "template"
    for command in sc.prepare:
        lab.ok(template, *command)
    if template.exists():
        precreate_buckets(template)
    allowed, after = _reference(lab, sc, template)
    launchers: queue.Queue[Warm] = queue.Queue()
    for launcher in warm_pool:
        launchers.put(launcher)

    def enumerate_kind(kind: str) -> dict[int, Any]:
        launcher = launchers.get()  # one launcher per thread: the kinds run side by side
        try:
            return _enumerate(lab.using(launcher), sc, template, kind, allowed, after)
        finally:
            launchers.put(launcher)

    kinds = ("kill", "enospc", "eio")
    with ThreadPoolExecutor(len(warm_pool)) as pool:
        states = dict(zip(kinds, pool.map(enumerate_kind, kinds), strict=True))
    assert states["kill"].keys() == states["enospc"].keys() == states["eio"].keys()
    # a failed write leaves exactly what a crash at that instant leaves: the old state intact
    assert states["enospc"] == states["kill"] == states["eio"]
    revisions = [s[0] if s else 0 for _, s in sorted(states["kill"].items())]
    assert revisions == sorted(revisions), "a later crash point left an older state"
    assert len(set(revisions)) > 1 or sc.name == "cancel"


def test_fault_variable_in_a_cold_process(tmp_path: Path) -> None:
    """The same through `python -m wfrun` with WFRUN_FAULT in its environment (no warm fork)."""
    from ._relutil import write_workflows

    workflows = write_workflows(tmp_path / "workflows")
    template = tmp_path / "template"

    def wfrun(state: Path, *args: str, fault: str = "") -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "WFRUN_FAULT": fault}
        return subprocess.run(
            [sys.executable, "-m", "wfrun", "--state-dir", str(state), "--workflows-dir",
             str(workflows), *args], capture_output=True, text=True, env=env, timeout=60)

    assert wfrun(template, "start", "flow", "--run-id", "r1").returncode == 0
    before = (template / "runs" / "r1.json").read_bytes()
    outcomes = []
    for n in range(1, 30):
        for kind in ("kill", "enospc"):
            state = tmp_path / f"{kind}{n}"
            copy_state(template, state)
            proc = wfrun(state, "cancel", "r1", fault=f"{kind}@{n}")
            outcomes.append((kind, n, proc.returncode))
            status = load(state, "r1").status
            if proc.returncode == 0:
                assert status == "cancelled"
                continue
            assert proc.returncode == (137 if kind == "kill" else 5), proc.stderr
            assert "Traceback" not in proc.stderr
            assert status in ("suspended", "cancelled")
            if status == "suspended":
                assert (state / "runs" / "r1.json").read_bytes() == before
        if outcomes[-1][2] == 0 and outcomes[-2][2] == 0:
            break
    assert [o for o in outcomes if o[2] == 137], outcomes


def test_a_failed_fsync_is_never_retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync reports a lost write once; retrying it on the same file would lie (fsyncgate)."""
    target = tmp_path / "snap.json"
    target.write_bytes(b"old")
    calls: list[int] = []

    def failing_fsync(fd: int) -> None:
        calls.append(fd)
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(_fsops.os, "fsync", failing_fsync)
    with pytest.raises(OSError):
        _fsops.durable_write(str(target), b"new")
    assert len(calls) == 1
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["snap.json"]

    # through the store: one fsync, a StateError naming the snapshot, the old state intact
    store = FileStore(tmp_path / "state")
    monkeypatch.undo()
    run = Run(run_id="r1", workflow="w", input={}, created_at="2026-01-01T00:00:00.000Z",
              updated_at="2026-01-01T00:00:00.000Z", status="waiting")
    store.create(run)
    path = tmp_path / "state" / "runs" / "r1.json"
    saved = path.read_bytes()
    calls.clear()
    monkeypatch.setattr(_fsops.os, "fsync", failing_fsync)
    run.status = "completed"
    with pytest.raises(StateError, match=str(path)):
        store.save(run)
    assert len(calls) == 1
    assert path.read_bytes() == saved
    assert not list((tmp_path / "state" / "runs").glob(".tmp-*"))


def test_no_fsync_sits_in_a_loop_or_an_error_handler() -> None:
    """Read the store's code: no fsync/durable write is inside a loop or an except block."""
    durable = {"fsync", "fsync_dir", "fsync_file", "durable_write", "durable_replace",
               "create_empty"}
    for path in sorted((REPO / "wfrun" / "store").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if not isinstance(node, ast.For | ast.While | ast.ExceptHandler | ast.AsyncFor):
                continue
            for inner in ast.walk(node):
                if isinstance(inner, ast.Call):
                    func = inner.func
                    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                    assert name not in durable, f"{path.name}:{inner.lineno}: {name} may be retried"
