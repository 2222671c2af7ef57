"""Step output capture when steps execute in several threads of one process (as a server may)."""

from __future__ import annotations

import io
import sys
import threading
from datetime import UTC, datetime

from wfrun._threads import own_thread
from wfrun.engine import set_echo
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


def test_a_thread_of_wfrun_s_own_keeps_its_output_while_a_step_executes_elsewhere() -> None:
    """A server's connection thread (marked with `own_thread`) writing while a step executes
    in a worker: its lines go to the stream the routers replaced, not into the step's output;
    a thread the step starts is still the step's."""
    captured, real = io.StringIO(), sys.stderr
    capture = StepOutput("a", 1, now, None)
    executing, written = threading.Event(), threading.Event()

    def step() -> None:
        with capture:
            executing.set()
            assert written.wait(timeout=10)
            helper = threading.Thread(target=lambda: print("from the step's thread"))
            helper.start()
            helper.join()

    def server_thread() -> None:
        own_thread()
        assert executing.wait(timeout=10)
        sys.stderr.write("GET /healthz 200\n")
        sys.stderr.flush()
        written.set()

    sys.stderr = captured
    try:
        threads = [threading.Thread(target=step), threading.Thread(target=server_thread)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=20)
        assert sys.stderr is captured  # put back
    finally:
        sys.stderr = real
    assert captured.getvalue() == "GET /healthz 200\n"
    assert [r["text"] for r in capture.records] == ["from the step's thread"]


def test_a_write_through_a_router_taken_as_the_last_step_ended_reaches_the_right_stream(
) -> None:
    """A thread of wfrun's own that read sys.stdout while a step executed and writes once the
    step has ended (the router is no longer installed): its text reaches the stdout the router
    had replaced, not stderr. Another swap of sys.stdout meanwhile (a test's CliRunner, which
    puts back what it found, the router) does not make the next step's routers write to
    themselves."""
    out, err, real = io.StringIO(), io.StringIO(), (sys.stdout, sys.stderr)
    sys.stdout, sys.stderr = out, err
    try:
        with StepOutput("a", 1, now, None):
            taken = sys.stdout, sys.stderr
        assert (sys.stdout, sys.stderr) == (out, err)

        def late() -> None:
            own_thread()
            for stream, text in zip(taken, ("late out\n", "late err\n"), strict=True):
                stream.write(text)
                stream.flush()

        thread = threading.Thread(target=late)
        thread.start()
        thread.join(timeout=10)
        sys.stdout, sys.stderr = taken  # put back after the step ended
        with StepOutput("b", 1, now, None) as again:
            print("from b")
        sys.stdout.write("after b\n")
    finally:
        sys.stdout, sys.stderr = real
    assert (out.getvalue(), err.getvalue()) == ("late out\nafter b\n", "late err\n")
    assert [r["text"] for r in again.records] == ["from b"]


def test_a_failing_sink_does_not_fail_the_step() -> None:
    def sink(records: list[dict[str, object]]) -> None:
        raise OSError("disk full")

    capture = StepOutput("a", 1, now, sink)
    with capture:
        print("one")
        print("two")
    assert capture.broken == "OSError: disk full"


def test_a_lone_surrogate_is_kept_and_echoed_escaped_not_dropped() -> None:
    """A sink that writes UTF-8 (as the stores do) and a strict stderr both take the line."""
    kept: list[str] = []

    def sink(records: list[dict[str, object]]) -> None:
        kept.extend(str(r["text"]).encode("utf-8").decode("utf-8") for r in records)

    echo = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", errors="strict")
    saved = sys.stderr
    sys.stderr = echo
    set_echo(True)
    try:
        capture = StepOutput("a", 1, now, sink)
        with capture:
            print("\u00e9 \udcff")
            print("x" * 20_000 + "\udcff")  # escaped, then cut: no piece over the limit
            capture.log({"level": "info", "message": "log \udcfd"})
            print("after")
    finally:
        set_echo(False)
        sys.stderr = saved
    assert capture.broken is None
    assert kept[0] == "\u00e9 \\udcff"
    assert kept[1:3] == ["x" * 16_384, "x" * (20_000 - 16_384) + "\\udcff"]
    assert kept[3:] == ["log \\udcfd", "after"]
    echo.flush()
    assert echo.buffer.getvalue().decode("utf-8").splitlines() == [  # type: ignore[attr-defined]
        "\u00e9 \\udcff", "x" * 20_000 + "\\udcff", "a  info  log \\udcfd", "after"]
