"""A long-lived process (`tick --watch`) meets new runs for months: what the file store keeps
per run (lock objects, signatures, index entries) is bounded, and a forgotten run still
advances correctly, its due-index entries included."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store import file as file_store
from wfrun.store.file import FileStore


def test_a_long_lived_process_keeps_a_bounded_number_of_runs(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(file_store, "KNOWN_RUNS_KEPT", 8)
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "poll.yaml").write_text("steps:\n  - id: poll\n")
    (workflows / "poll.py").write_text(
        "def poll(ctx):\n"
        "    if ctx.run.runs < 3:\n"
        "        ctx.flow.rerun('1m', None, 5)\n"
        "    return ctx.run.runs\n")
    store = FileStore(tmp_path / "state")
    clock = FakeClock("2026-01-01T00:00:00Z")
    engine = Engine(store, clock, workflows_dir=str(workflows))
    for i in range(30):
        engine.start("poll", run_id=f"r{i:02d}")
        assert len(store._locks) <= 8 and len(store._stat) <= 8 and len(store._index) <= 8
    for minutes in (2, 4):  # each tick fires every run's rerun: the same process, same store
        clock.set(f"2026-01-01T00:0{minutes}:00Z")
        report = engine.tick(workers=1)
        assert not report.errors
        assert len(report.advanced) == 30
        assert len(store._locks) <= 8 and len(store._stat) <= 8 and len(store._index) <= 8
    for i in range(30):
        run = engine.get(f"r{i:02d}").run
        assert (run.status, run.output) == ("completed", 3)
    due = tmp_path / "state" / "due"  # no stale entry left behind (hourly buckets may stay)
    assert [entry for bucket in os.listdir(due) for entry in os.listdir(due / bucket)
            if not entry.startswith(".blank")] == []  # (the file entries are links to)
    assert store.check()[1] == []
