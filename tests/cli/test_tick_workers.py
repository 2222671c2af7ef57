"""`tick --workers N`: many due runs shared among forked worker processes (issue 4)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import pytest
from conftest import Project

from wfrun.engine import _workers

NOW = "2030-01-01T00:00:00Z"
POLL_PY = """
import os

def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1s", None, 3)
        return "again"
    if ctx.input.get("die") and not os.path.exists(ctx.input["ledger"] + ".died"):
        open(ctx.input["ledger"] + ".died", "w").close()
        os._exit(9)  # the worker executing this run dies mid-step, once
    with open(ctx.input["ledger"], "a") as fh:
        fh.write(f"{ctx.run_id} {os.getpid()}\\n")
    return ctx.run.runs
"""


def _start_many(project: Project, count: int, die: str | None = None) -> list[str]:
    project.workflow("poll", "steps: [{id: poll}]", POLL_PY)
    ledger = project.root / "ledger"
    ids = [f"p{i:03d}" for i in range(count)]
    for run_id in ids:
        data = {"ledger": str(ledger), "die": run_id == die}
        project.json("start", "poll", "--run-id", run_id, "--input", json.dumps(data))
    return ids


def test_workers_share_the_due_runs_and_report_them_in_due_order(project: Project) -> None:
    ids = _start_many(project, 40)
    out = project.cli("tick", "--now", NOW, "--workers", "2", "--json")
    assert out.code == 0, out.stderr
    advanced = json.loads(out.stdout)["advanced"]
    assert [a["run_id"] for a in advanced] == ids  # the order they were due in
    assert {(a["reason"], a["status"]) for a in advanced} == {("rerun", "completed")}
    ledger = (project.root / "ledger").read_text().split()
    runs, pids = ledger[::2], set(ledger[1::2])
    assert sorted(runs) == ids  # every step attempt executed exactly once
    assert len(pids) == 2
    assert json.loads(project.cli("tick", "--now", NOW, "--json").stdout) == {
        "advanced": [], "errors": []}


@pytest.mark.slow  # many forked workers over many runs: CI runs it with -m slow
def test_by_default_tick_forks_two_workers_per_cpu_it_may_use_at_most_four(
        project: Project) -> None:
    _start_many(project, 64)  # enough for four shares of at least 16 runs each
    out = project.cli("tick", "--now", NOW, "--json")
    assert out.code == 0, out.stderr
    pids = set((project.root / "ledger").read_text().split()[1::2])
    assert len(pids) == min(4, 2 * len(os.sched_getaffinity(0)))


def test_few_due_runs_are_advanced_in_the_tick_process_itself(project: Project) -> None:
    _start_many(project, 5)
    out = project.cli("tick", "--now", NOW, "--workers", "4", "--json")
    assert out.code == 0, out.stderr
    pids = set((project.root / "ledger").read_text().split()[1::2])
    assert len(pids) == 1


@pytest.mark.slow  # many forked workers over many runs: CI runs it with -m slow
def test_a_dead_worker_is_reported_with_the_runs_it_advanced_and_its_run_recovered(
    project: Project,
) -> None:
    # worker 2 of 2 has p001, p003, ... p039; it dies in p011, after advancing five runs
    ids = _start_many(project, 40, die="p011")
    out = project.cli("tick", "--now", NOW, "--workers", "2", "--json")
    assert out.code == 1
    report = json.loads(out.stdout)
    assert len(report["errors"]) == 1 and "a tick worker died" in report["errors"][0]["message"]
    assert "with 15 of its 20 due run(s) not reported" in report["errors"][0]["message"]
    assert "a tick worker died" in out.stderr and "Traceback" not in out.stderr
    reported = [a["run_id"] for a in report["advanced"]]
    assert reported == [i for i in ids if i < "p011" or int(i[1:]) % 2 == 0]  # in due order
    assert {a["status"] for a in report["advanced"]} == {"completed"}
    # the next tick recovers p011 (its worker died mid-step) and advances what that worker
    # had not reached; every run completes, and no finished step attempt executed twice
    again = project.cli("tick", "--now", NOW, "--workers", "1", "--json")
    assert again.code == 0, again.stderr
    advanced = {a["run_id"]: a["reason"] for a in json.loads(again.stdout)["advanced"]}
    assert advanced == {"p011": "recovered"} | {f"p{i:03d}": "rerun" for i in range(13, 40, 2)}
    statuses = {row["run_id"]: row["status"] for row in project.json("list")}
    assert statuses == dict.fromkeys(ids, "completed")
    ledger = [line.split()[0] for line in (project.root / "ledger").read_text().splitlines()]
    assert sorted(ledger) == ids


def test_the_runs_a_dead_worker_reported_are_made_durable_by_the_tick(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker's own batch never closed: the tick process fsyncs the runs directory (the
    renames of their last states) and their histories before it reports them."""
    from wfrun.store import _appends, _fsops

    _start_many(project, 40, die="p011")
    synced: list[str] = []  # this process's fsyncs (the forked workers record in their copies)
    def tracing(real: Callable[[str], None]) -> Callable[[str], None]:
        def traced(path: str) -> None:
            real(path)
            synced.append(path)
        return traced

    monkeypatch.setattr(_fsops, "fsync_dir", tracing(_fsops.fsync_dir))
    monkeypatch.setattr(_appends, "fsync_file", tracing(_appends.fsync_file))
    out = project.run("tick", "--now", NOW, "--workers", "2", "--json")
    assert out.code == 1
    runs = project.state / "runs"
    assert synced[0] == str(runs)  # then the histories, several at a time
    assert sorted(synced[1:]) == [str(runs / f"p{i:03d}.history.jsonl") for i in (1, 3, 5, 7, 9)]


def test_runs_of_a_worker_whose_flush_failed_are_made_durable_by_the_tick(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    from wfrun.errors import StateError
    from wfrun.store import _fsops
    from wfrun.store.file import FileStore

    ids = _start_many(project, 40)
    tick_process, real_flush = os.getpid(), FileStore._flush

    def failing_flush(self: FileStore) -> None:  # the workers' flushes fail, not the tick's
        if os.getpid() != tick_process:
            raise StateError("cannot sync directory runs: Input/output error")
        real_flush(self)

    monkeypatch.setattr(FileStore, "_flush", failing_flush)
    synced: list[str] = []
    real = _fsops.fsync_dir

    def fsync_dir(path: str) -> None:
        real(path)
        synced.append(path)

    monkeypatch.setattr(_fsops, "fsync_dir", fsync_dir)
    out = project.run("tick", "--now", NOW, "--workers", "2", "--json")
    assert out.code == 1
    report = out.json()
    assert [a["run_id"] for a in report["advanced"]] == ids
    assert [e["message"] for e in report["errors"]] == [
        "a tick worker stopped: StateError: cannot sync directory runs: Input/output error"] * 2
    assert synced == [str(project.state / "runs")]  # for both workers' runs, by the tick itself


def test_without_a_process_to_fork_the_tick_advances_every_run_itself(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = _start_many(project, 40)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(_workers.os, "fork", no_fork)
    out = project.run("tick", "--now", NOW, "--workers", "2", "--json")
    assert out.code == 0, out.stderr
    assert [a["run_id"] for a in out.json()["advanced"]] == ids
    assert len(set((project.root / "ledger").read_text().split()[1::2])) == 1
