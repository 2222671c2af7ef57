"""`wfrun logs`: what steps printed (stdout, stderr) and logged (ctx.log), kept per run."""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import time

import pytest
from conftest import Project

MANIFEST = """
    name: noisy
    steps:
      - id: greet
      - id: poll
      - id: fail
"""
MODULE = """
    import sys

    def greet(ctx):
        print("hello from stdout")
        print("two\\nlines", file=sys.stderr)
        ctx.log.warning("careful: %s", ctx.input.get("who"))
        sys.stdout.write("no newline at the end")
        return {"ok": True}

    def poll(ctx):
        print(f"poll number {ctx.run.runs}")
        if ctx.run.runs < 2:
            ctx.flow.rerun("10s")
        return ctx.run.runs

    def fail(ctx):
        print("about to fail")
        raise ValueError("boom")
"""


def start_noisy(project: Project) -> tuple[str, str]:
    project.workflow("noisy", MANIFEST, MODULE)
    out = project.run("start", "noisy", "--input", '{"who": "ann"}', "--json", "--verbose")
    assert out.code == 0, out.stderr
    doc = out.json()  # stdout holds only the JSON document ...
    assert "hello from stdout" in out.stderr  # ... what the step printed is echoed on stderr
    return doc["run_id"], doc["waiting"][0]["due_at"]


def test_logs_keep_stdout_stderr_and_ctx_log_in_order(project: Project) -> None:
    run_id, _ = start_noisy(project)
    records = project.json("logs", run_id)
    assert [(r["step"], r["stream"], r["text"]) for r in records] == [
        ("greet", "stdout", "hello from stdout"),
        ("greet", "stderr", "two"),
        ("greet", "stderr", "lines"),
        ("greet", "log", "careful: ann"),
        ("greet", "stdout", "no newline at the end"),
        ("poll", "stdout", "poll number 1"),
    ]
    assert records[3]["level"] == "warning"
    assert all(r["runs"] == 1 and r["at"].endswith("Z") for r in records)
    human = project.run("logs", run_id)
    assert human.code == 0
    lines = human.stdout.splitlines()
    assert lines[0].endswith("  greet  stdout  hello from stdout")
    assert lines[3].endswith("  greet  warning  careful: ann")
    # ctx.log records are still kept in the run's history too
    history = project.json("show", run_id)["history"]
    assert [e["message"] for e in history if e["type"] == "log"] == ["careful: ann"]


def test_logs_of_reruns_and_failures_and_the_step_filter(project: Project) -> None:
    run_id, due = start_noisy(project)
    assert project.run("tick", "--now", due).code == 1  # poll runs again, then fail raises
    poll = project.json("logs", run_id, "--step", "poll")
    assert [(r["runs"], r["text"]) for r in poll] == [(1, "poll number 1"), (2, "poll number 2")]
    fail = project.json("logs", run_id, "--step", "fail")
    assert [(r["stream"], r["text"]) for r in fail] == [
        ("stdout", "about to fail"), ("error", "ValueError: boom")]
    human = project.run("logs", run_id, "--step", "poll").stdout.splitlines()
    assert [line.split("  ", 1)[1] for line in human] == [
        "poll  stdout  poll number 1", "poll#2  stdout  poll number 2"]


def test_logs_errors(project: Project) -> None:
    run_id, _ = start_noisy(project)
    unknown_step = project.run("logs", run_id, "--step", "nope")
    assert unknown_step.code == 4
    assert "no step 'nope'" in unknown_step.stderr and "greet" in unknown_step.stderr
    assert project.run("logs", "no-such-run").code == 4
    assert project.run("logs", "../etc").code == 2


def test_the_step_filter_selects_a_foreach_step_or_one_iteration(project: Project) -> None:
    project.workflow("lg", """
        name: lg
        steps:
          - id: make
          - id: each
            foreach: make
    """, """
        def make(ctx):
            print("making")
            return [1, 2]

        def each(ctx):
            print(f"item {ctx.item}")
            return ctx.item
    """)
    assert project.run("start", "lg", "--run-id", "lg1").code == 0
    each = project.json("logs", "lg1", "--step", "each")
    assert [(r["step"], r["text"]) for r in each] == [("each[0]", "item 1"), ("each[1]", "item 2")]
    one = project.run("logs", "lg1", "--step", "each[1]")
    assert one.code == 0 and one.stdout.endswith("  each[1]  stdout  item 2\n")
    assert len(one.stdout.splitlines()) == 1
    out_of_range = project.run("logs", "lg1", "--step", "each[2]")
    assert out_of_range.code == 4
    assert "each[2]" in out_of_range.stderr and "each[0] to each[1]" in out_of_range.stderr
    not_foreach = project.run("logs", "lg1", "--step", "make[0]")
    assert not_foreach.code == 4 and "no iterations" in not_foreach.stderr


def test_an_exception_message_with_a_lone_surrogate_fails_the_run_and_is_kept(
        project: Project) -> None:
    """Not a crash of the command with the run left 'running': its text is kept escaped."""
    project.workflow("odd", "steps: [{id: a}]\n",
                     'def a(ctx):\n    raise ValueError("bad \\udcff")\n')
    out = project.cli("start", "odd", "--run-id", "o1")
    assert out.code == 1, out.stderr
    assert "raised ValueError: bad \\udcff" in out.stderr and "Traceback" not in out.stderr
    doc = project.json("show", "o1")
    assert (doc["status"], doc["error"]["message"]) == ("failed", "bad \\udcff")
    assert [(r["stream"], r["text"]) for r in project.json("logs", "o1")] == [
        ("error", "ValueError: bad \\udcff")]


def test_a_run_without_output_has_no_logs(project: Project) -> None:
    project.workflow("quiet", """
        name: quiet
        steps: [{id: a}]
    """, "def a(ctx):\n    return 1\n")
    run_id = project.json("start", "quiet")["run_id"]
    assert project.json("logs", run_id) == []
    out = project.run("logs", run_id)
    assert (out.code, out.stdout) == (0, "")
    assert "no step output" in out.stderr


def test_follow_on_a_finished_run_prints_everything_and_returns_at_once(project: Project) -> None:
    run_id, due = start_noisy(project)
    project.run("tick", "--now", due)
    began = time.monotonic()
    out = project.run("logs", run_id, "--follow", "--json")
    assert out.code == 0
    assert time.monotonic() - began < 2
    records = [json.loads(line) for line in out.stdout.splitlines()]  # JSON Lines
    assert records[-1]["text"] == "ValueError: boom"
    assert len(records) == len(project.json("logs", run_id))


def test_follow_shows_output_of_a_step_while_it_runs(project: Project) -> None:
    go = project.root / "go"
    project.workflow("slow", """
        name: slow
        steps: [{id: work}]
    """, f"""
        import os, time

        def work(ctx):
            print("started", flush=True)
            deadline = time.monotonic() + 20
            while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
                time.sleep(0.02)
            print("finished")
            return 1
    """)
    env = {**os.environ}
    base = [sys.executable, "-m", "wfrun", *project.base_args()]
    starter = subprocess.Popen([*base, "start", "slow", "--run-id", "live", "--json"],
                               cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               env=env, text=True)
    follower = None
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:  # wait until the step has printed its first line
            out = project.run("logs", "live", "--json")
            if out.code == 0 and out.json():
                break
            time.sleep(0.05)
        follower = subprocess.Popen([*base, "logs", "live", "--follow"], cwd=project.root,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        first = follower.stdout.readline() if follower.stdout else ""
        assert first.endswith("  work  stdout  started\n")
        assert follower.poll() is None  # still following: the run is not finished
        go.write_text("")
        rest, _ = follower.communicate(timeout=20)
        assert follower.returncode == 0
        assert rest.endswith("  work  stdout  finished\n")
        assert starter.wait(timeout=20) == 0
    finally:
        for proc in (starter, follower):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()


def test_steps_may_use_the_streams_like_files(project: Project) -> None:
    project.workflow("streams", """
        name: streams
        steps: [{id: a}]
    """, """
        import sys

        def a(ctx):
            sys.stdout.buffer.write(b"raw bytes\\n")  # echoed, not kept
            sys.stdout.flush()
            print("encoding", sys.stdout.encoding is not None, file=sys.stderr)
            print(*range(3), sep="-", end="!\\n")
            return sys.stdout.isatty()
    """)
    out = project.cli("start", "streams", "--json")
    assert out.code == 0, out.stderr
    assert out.json()["output"] is False
    assert "raw bytes" in out.stderr
    assert [r["text"] for r in project.json("logs", out.json()["run_id"])] == [
        "encoding True", "0-1-2!"]


def test_the_step_filter_takes_a_path_into_a_child_run(project: Project) -> None:
    """`--step PARENT-STEP/CHILD-STEP` (and `STEP[INDEX]/CHILD-STEP`), as resume takes it: the
    child run's records of that step, named by their path from the run asked about."""
    project.workflow("kid", """
        steps:
          - id: hello
          - id: approve
            needs: [hello]
    """, """
        def hello(ctx):
            print(f"hello {ctx.input}")
            return 1

        def approve(ctx):
            ctx.log.info("approving")
            return ctx.flow.suspend()
    """)
    project.workflow("parent", """
        steps:
          - id: first
          - id: review
            workflow: kid
            needs: [first]
          - id: each
            foreach: first
            workflow: kid
            needs: [review]
    """, """
        def first(ctx):
            print("first")
            return [1, 2]
    """)
    assert project.run("start", "parent", "--run-id", "pa").code == 0
    approve = project.run("logs", "pa", "--step", "review/approve")
    assert approve.code == 0, approve.stderr
    assert [line.split("  ", 1)[1] for line in approve.stdout.splitlines()] == [
        "review/approve  info  approving"]
    doc = project.json("logs", "pa", "--step", "review/hello")
    assert [(r["step"], r["text"]) for r in doc] == [("review/hello", "hello {}")]
    assert project.run("resume", "pa", "--step", "review/approve").code == 0
    one = project.json("logs", "pa", "--step", "each[1]/hello")
    assert [(r["step"], r["text"]) for r in one] == [("each[1]/hello", "hello 2")]
    review = project.run("logs", "pa", "--step", "review")  # its own: none, its child's: where
    assert (review.code, review.stdout) == (0, "")
    assert "its child run print their own (--step review/STEP)" in review.stderr
    for step, code, said in [
            ("each/hello", 2, "step 'each' of run pa is a foreach step"),
            ("each[5]/hello", 4, "run pa has no iteration 'each[5]' of step 'each'"),
            ("first/hello", 4, "step 'first' of run pa has no child run to address with '/'"),
            ("review/nope", 4, "run pa--review has no step 'nope' (steps: hello, approve)"),
            ("review/no pe", 2, "--step 'review/no pe' is not a step address")]:
        out = project.run("logs", "pa", "--step", step)
        assert (out.code, out.stdout) == (code, ""), (step, out.stderr)
        assert said in out.stderr, (step, out.stderr)


def test_an_empty_step_filter_is_a_usage_error(project: Project) -> None:
    run_id, _ = start_noisy(project)
    for args in ([], ["--json"], ["--follow"]):
        out = project.run("logs", run_id, "--step", "", *args)
        assert (out.code, out.stdout) == (2, "")
        assert out.stderr.startswith("error: --step '' names no step: give a step id (STEP)")


def _log_writes_fail(monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    """Appending to a run's log (what its steps print) fails with `code`; its history and
    snapshot are still written."""
    import wfrun.store._appends as appends

    append_line = appends.append_line

    def failing(path: str, data: bytes) -> None:
        if path.endswith(".log.jsonl"):
            raise OSError(code, os.strerror(code))
        append_line(path, data)

    monkeypatch.setattr(appends, "append_line", failing)


LOUD = ("""
    steps:
      - id: talk
      - id: ask
        wait: true
        needs: [talk]
      - id: after
        needs: [ask]
""", """
    def talk(ctx):
        print("talking")
        ctx.log.warning("careful")
        return 1

    def after(ctx):
        print("after")
        return 2
""")


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EIO])
def test_output_that_cannot_be_stored_is_said_and_the_run_goes_on(
        project: Project, monkeypatch: pytest.MonkeyPatch, code: int) -> None:
    project.workflow("loud", *LOUD)
    _log_writes_fail(monkeypatch, code)
    log = project.state / "runs" / "l1.log.jsonl"
    said = (f"run l1: what step '{{step}}' printed or logged could not be kept (cannot append to "
            f"log {log}: {os.strerror(code)}); 'wfrun --state-dir {project.state} logs l1' lacks it "
            "from that line on, and the run went on")
    started = project.run("start", "loud", "--run-id", "l1")
    assert started.code == 0, started.stderr
    assert started.stderr == f"warning: {said.format(step='talk')}\n"
    assert "Run l1 (loud) is suspended." in started.stdout
    resumed = project.run("resume", "l1", "--json")
    assert resumed.code == 0
    doc = resumed.json()
    assert doc["warnings"] == [said.format(step="after")]
    assert resumed.stderr == f"warning: {said.format(step='after')}\n"
    assert (doc["status"], doc["steps"]["talk"]["output"], doc["output"]) == ("completed", 1, 2)
    monkeypatch.undo()
    assert project.json("logs", "l1") == []
    assert project.json("show", "l1")["warnings"] == []  # what the commands said, not state


def test_a_tick_says_which_steps_output_could_not_be_stored(
        project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    project.workflow("nap", """
        steps:
          - id: nap
            sleep: 1m
          - id: talk
            needs: [nap]
          - id: each
            foreach: talk
            needs: [talk]
    """, """
        def talk(ctx):
            print("talking")
            return [1, 2]

        def each(ctx):
            print(f"item {ctx.item}")
            return ctx.item
    """)
    assert project.run("start", "nap", "--run-id", "n1").code == 0
    _log_writes_fail(monkeypatch, errno.ENOSPC)
    ticked = project.run("tick", "--now", "+2m")
    assert ticked.code == 0, ticked.stderr
    assert ticked.stdout == "n1  nap  sleep -> completed\n"
    assert [line.split(" could not be kept")[0] for line in ticked.stderr.splitlines()] == [
        f"warning: run n1: what step '{step}' printed or logged"
        for step in ("talk", "each[0]", "each[1]")]
    assert "No space left on device" in ticked.stderr
    monkeypatch.undo()
    assert project.json("show", "n1")["output"] == [1, 2]
