"""The engine's timers over every store, fired by `tick` at the fake clock's time: reruns with
their counter and context, sleeps, suspension timeouts, retries after a backoff, and `retry`
of a failed run. Nothing fires a moment early; state is read back through the store."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from wfrun.engine import Engine


def fired(engine: Engine) -> list[tuple[str, str | None, str]]:
    """Tick at the clock's time: (run, step, reason) of what it advanced; no errors."""
    report = engine.tick()
    assert report.errors == []
    return [(a["run_id"], a["step"], a["reason"]) for a in report.advanced]


def test_a_rerun_executes_the_step_again_with_its_counter_and_context(engine: Engine) -> None:
    result = engine.start("poll", run_id="p1")
    assert result.run.status == "waiting"
    state = engine.store.load("p1").steps["poll"]
    assert (state.status, state.runs, state.context, state.output) == (
        "waiting", 1, {"polls": 1}, {"polls": 1, "runs": 1})
    engine.clock.advance("9s")
    assert fired(engine) == []  # due in 10 s, not before
    engine.clock.advance("1s")
    assert fired(engine) == [("p1", "poll", "rerun")]
    state = engine.store.load("p1").steps["poll"]
    assert (state.runs, state.context, state.output) == (2, {"polls": 2}, {"polls": 2, "runs": 2})
    engine.clock.advance("10s")
    assert fired(engine) == [("p1", "poll", "rerun")]
    run = engine.store.load("p1")
    assert (run.status, run.output) == ("completed", {"polls": 3, "runs": 3})
    assert [e["type"] for e in engine.store.read_history("p1")].count("rerun_scheduled") == 2


def test_a_sleep_is_fired_by_the_tick_at_its_time(engine: Engine) -> None:
    engine.start("nap", run_id="n1")
    run = engine.store.load("n1")
    assert (run.status, run.next_due()) == ("waiting", "2026-01-05T10:00:00.000Z")
    assert engine.store.due("2026-01-05T09:59:59.999Z") == []
    engine.clock.advance("59m59s")
    assert fired(engine) == []
    assert engine.store.load("n1").revision == run.revision  # an early tick changes nothing
    engine.clock.advance("1s")
    assert fired(engine) == [("n1", "delay", "sleep")]
    run = engine.store.load("n1")
    assert (run.status, run.output) == ("completed", {"woke": "zz"})
    assert run.steps["wake"].started_at == "2026-01-05T10:00:00.000Z"
    assert fired(engine) == []  # nothing is fired twice


@pytest.mark.parametrize(("workflow", "status", "output"), [
    ("approval", "cancelled", None),
    ("approval-resume", "completed", {"amount": 5, "approved": None}),
    ("approval-fail", "failed", None),
])
def test_a_suspension_nobody_answers_times_out_as_its_step_says(
        engine: Engine, workflow: str, status: str, output: object) -> None:
    engine.start(workflow, {"amount": 5}, run_id="t1")
    engine.clock.advance("47h59m59s")
    assert fired(engine) == []
    engine.clock.advance("1s")  # 2 days after it suspended
    assert fired(engine) == [("t1", "approve", "timeout")]
    run = engine.store.load("t1")
    assert (run.status, run.output, run.next_due()) == (status, output, None)
    assert "timed_out" in [e["type"] for e in engine.store.read_history("t1")]
    if status == "failed":
        assert run.error is not None and run.error["step"] == "approve"


@pytest.mark.parametrize("workflow", ["approval", "approval-fail"])
def test_a_late_tick_says_the_timeout_the_step_had_not_how_long_it_waited(
        engine: Engine, workflow: str) -> None:
    engine.start(workflow, {"amount": 5}, run_id="t1")
    engine.clock.advance("3d")  # a day after the deadline: cron was down
    assert fired(engine) == [("t1", "approve", "timeout")]
    run = engine.store.load("t1")
    cancelled = [e.get("reason") for e in engine.store.read_history("t1")
                 if e["type"] == "cancelled"]
    said = (run.error or {}).get("message") or cancelled[0]
    assert "2d" in said and "3d" not in said, said


def test_a_failing_step_is_retried_after_its_backoff(engine: Engine) -> None:
    result = engine.start("flaky", run_id="f1")
    assert result.run.status == "waiting"
    state = engine.store.load("f1").steps["call"]
    assert (state.status, state.runs) == ("waiting", 1)
    engine.clock.advance("29s")
    assert fired(engine) == []
    engine.clock.advance("1s")  # 30 s after the first failure
    assert fired(engine) == [("f1", "call", "retry")]
    assert engine.store.load("f1").steps["call"].runs == 2
    engine.clock.advance("59s")  # then 60 s (backoff 2.0)
    assert fired(engine) == []
    engine.clock.advance("1s")
    assert fired(engine) == [("f1", "call", "retry")]
    run = engine.store.load("f1")
    assert (run.status, run.output, run.steps["call"].runs) == ("completed", {"attempt": 3}, 3)
    assert [e["type"] for e in engine.store.read_history("f1")].count("retried") == 2


def test_retry_executes_a_failed_run_again_from_its_failed_step(
        engine: Engine, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    broken.write_text("yes")
    failed = engine.start("fragile", {"broken": str(broken)}, run_id="r1")
    assert failed.run.status == "failed"
    run = engine.store.load("r1")
    assert run.error is not None and (run.error["step"], run.error["type"]) == (
        "work", "RuntimeError")
    assert engine.store.due("2030-01-01T00:00:00.000Z") == []  # nothing retries it by itself
    broken.unlink()
    engine.clock.advance("5m")
    again = engine.retry("r1", reason="fixed it")
    assert (again.run.status, again.run.output) == ("completed", "fixed")
    run = engine.store.load("r1")
    assert (run.steps["prepare"].runs, run.steps["work"].runs, run.error) == (1, 2, None)
    assert "retried" in [e["type"] for e in engine.store.read_history("r1")]


def test_after_a_slow_run_a_tick_lets_go_of_the_runs_of_its_batch_not_begun(
        engine: Engine, backend: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """A tick acquires due runs a batch at a time; once a run was slow, the runs of the batch
    it has not begun are let go for another worker (each is acquired alone afterwards), not
    held under its claims while it works through the batch."""
    from wfrun.engine import _tick

    ids = [engine.start("poll", run_id=f"p{i}").run.run_id for i in range(3)]
    engine.clock.advance(timedelta(seconds=10))
    other = backend.open()  # another worker, on the same storage
    held_while_advancing: list[list[str]] = []
    advance = _tick._advance_claimed

    def watched(runner: Any, claim: Any, report: Any) -> Any:
        held = []
        for run_id in ids:
            if run_id != claim.run_id and run_id not in done:
                taken = other.claim(run_id)
                if taken is None:
                    held.append(run_id)
                else:
                    taken.release()
        held_while_advancing.append(held)
        done.add(claim.run_id)
        return advance(runner, claim, report)

    done: set[str] = set()
    monkeypatch.setattr(_tick, "_advance_claimed", watched)
    monkeypatch.setattr(_tick, "SLOW", 0.0)  # every run counts as slow
    assert sorted(r for r, _, _ in fired(engine)) == ids
    assert held_while_advancing == [["p1", "p2"], [], []]


def test_a_run_left_ready_is_continued_by_tick_without_a_recovered_event(engine: Engine) -> None:
    """A run made and left for another process to execute (an HTTP start, a link's resume
    `wfrun serve` accepted) that tick takes first: reported `recovered` with no step, as the
    docs say, but nothing was interrupted, so its history has no `recovered` event."""
    engine.create("greet", {"name": "ada"}, run_id="g1")
    assert fired(engine) == [("g1", None, "recovered")]
    assert engine.store.load("g1").output == "HELLO ADA"
    assert "recovered" not in [e["type"] for e in engine.store.read_history("g1")]
