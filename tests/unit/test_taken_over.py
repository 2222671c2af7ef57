"""A command whose own change was saved, and whose process then lost its claim while it
executed the steps that follow (a lease that ran out during a stall), reports what it did with
a warning: the other process goes on with the run. Over the memory store, whose leases are
timed by the fake clock: a step stalls by stopping its store's renewals and moving the clock
past the lease, and another "process" (a store over the same backing) takes the run over."""

from __future__ import annotations

import sys
import textwrap
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from wfrun.clock import FakeClock
from wfrun.engine import Engine
from wfrun.store.memory import MemoryStore

LEASE = 5.0


@pytest.fixture
def stall() -> Iterator[types.ModuleType]:
    """A module the step imports: its `hook` runs inside the step (set by the test)."""
    module = types.ModuleType("wfrun_test_stall")
    module.hook = lambda: None  # type: ignore[attr-defined]
    sys.modules[module.__name__] = module
    yield module
    del sys.modules[module.__name__]


@pytest.mark.parametrize("command", ["start", "resume"])
def test_a_command_that_lost_its_claim_after_its_own_change_says_so_and_succeeds(
        tmp_path: Path, stall: types.ModuleType, command: str) -> None:
    (tmp_path / "stalls.yaml").write_text(textwrap.dedent("""\
        name: stalls
        steps:
          - id: gate
            wait: true
          - id: work
        """ if command == "resume" else """\
        name: stalls
        steps:
          - id: work
        """))
    (tmp_path / "stalls.py").write_text(
        "import wfrun_test_stall\n\ndef work(ctx):\n    wfrun_test_stall.hook()\n    return 1\n")
    clock = FakeClock("2026-01-05T09:00:00Z")
    store = MemoryStore(clock=clock, lease_seconds=LEASE)
    engine = Engine(store, clock, workflows_dir=str(tmp_path))
    other = MemoryStore(store)  # another process over the same database
    taken: list[object] = []

    def take_over() -> None:
        store.stop_renewing()
        clock.advance(LEASE + 1)
        run_id = next(iter(store.backing.runs))
        taken.append(other.claim(run_id))  # the lease ran out: the other one has the run

    if command == "resume":
        run_id = engine.start("stalls").run.run_id
        stall.hook = take_over  # type: ignore[attr-defined]
        result = engine.resume(run_id, {"ok": True})
    else:
        stall.hook = take_over  # type: ignore[attr-defined]
        result = engine.start("stalls")
        run_id = result.run.run_id
    assert taken and taken[0] is not None
    assert result.run.status == "running"  # the other process executes `work` again
    assert result.run.steps["work"].status == "running"
    if command == "resume":
        assert result.run.steps["gate"].resume_data == {"ok": True}  # its own change is kept
    [warning] = result.warnings
    assert f"run {run_id} was taken over by another process" in warning
    assert "its last change was not saved" in warning
