"""Step output capture when steps execute in several threads of one process (as a server may)."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

from wfrun.engine._capture import StepOutput


def now() -> datetime:
    return datetime(2026, 1, 1, tzinfo=UTC)


def test_concurrent_steps_keep_their_own_lines_and_the_streams_come_back() -> None:
    before = (sys.stdout, sys.stderr)
    captures = {name: StepOutput(name, 1, now, None) for name in ("a", "b")}
    inside = threading.Barrier(2)

    def step(name: str) -> None:
        with captures[name]:
            for i in range(50):
                print(f"{name} {i}")
                if i == 10:
                    inside.wait(timeout=10)  # both steps are executing now
                print(f"{name} err {i}", file=sys.stderr)

    threads = [threading.Thread(target=step, args=(n,)) for n in captures]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
    assert (sys.stdout, sys.stderr) == before
    for name, capture in captures.items():
        texts = [(r["stream"], r["text"]) for r in capture.records]
        assert [t for s, t in texts if s == "stdout"] == [f"{name} {i}" for i in range(50)]
        assert [t for s, t in texts if s == "stderr"] == [f"{name} err {i}" for i in range(50)]
        assert {r["step"] for r in capture.records} == {name}


def test_a_thread_the_step_starts_writes_to_the_step() -> None:
    capture = StepOutput("a", 1, now, None)
    with capture:
        worker = threading.Thread(target=lambda: print("from a worker"))
        worker.start()
        worker.join()
        sys.stdout.write("partial")
    assert [r["text"] for r in capture.records] == ["from a worker", "partial"]


def test_a_failing_sink_does_not_fail_the_step() -> None:
    def sink(records: list[dict[str, object]]) -> None:
        raise OSError("disk full")

    capture = StepOutput("a", 1, now, sink)
    with capture:
        print("one")
        print("two")
    assert capture.broken == "OSError: disk full"
