"""`--verbose` on start, resume and tick echoes what steps print and log (ctx.log) to stderr as
it happens (SPEC §3, §5); without it nothing is echoed, and all of it is kept (`wfrun logs`)."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time

from conftest import Project

MANIFEST = """\
steps:
  - id: greet
  - id: gate
    wait: true
    needs: [greet]
  - id: later
    needs: [gate]
  - id: nap
    sleep: 1h
    needs: [later]
  - id: last
    needs: [nap]
"""
MODULE = """\
import sys


def greet(ctx):
    print("printed by greet")
    print("to stderr by greet", file=sys.stderr)
    ctx.log.info("logged by %s", "greet")
    return 1


def later(ctx):
    print("printed by later")
    ctx.log.warning("logged by later")
    return 2


def last(ctx):
    print("printed by last")
    ctx.log.error("logged by last")
    return 3
"""
STEP_TEXT = ("printed by", "to stderr by", "logged by")


def _echoed(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if any(t in line for t in STEP_TEXT)]


def test_without_verbose_nothing_is_echoed_but_everything_is_kept(project: Project) -> None:
    project.workflow("talk", MANIFEST, MODULE)
    started = project.cli("start", "talk", "--run-id", "t1")
    assert started.code == 0 and _echoed(started.stderr) == [], started.stderr
    assert "printed by" not in started.stdout
    resumed = project.cli("resume", "t1")
    assert resumed.code == 0 and _echoed(resumed.stderr) == [], resumed.stderr
    ticked = project.cli("tick", "--now", "+2h")
    assert ticked.code == 0 and _echoed(ticked.stderr) == [], ticked.stderr
    kept = [(r["step"], r["stream"], r["text"]) for r in project.json("logs", "t1")]
    assert kept == [
        ("greet", "stdout", "printed by greet"), ("greet", "stderr", "to stderr by greet"),
        ("greet", "log", "logged by greet"),
        ("later", "stdout", "printed by later"), ("later", "log", "logged by later"),
        ("last", "stdout", "printed by last"), ("last", "log", "logged by last"),
    ]


def test_verbose_echoes_prints_and_log_records_on_stderr(project: Project) -> None:
    project.workflow("talk", MANIFEST, MODULE)
    started = project.cli("start", "talk", "--run-id", "t1", "--verbose", "--json")
    assert started.code == 0
    assert json.loads(started.stdout)["status"] == "suspended"  # stdout: the document only
    assert _echoed(started.stderr) == ["printed by greet", "to stderr by greet",
                                       "greet  info  logged by greet"]
    resumed = project.cli("resume", "t1", "-v")
    assert _echoed(resumed.stderr) == ["printed by later", "later  warning  logged by later"]
    ticked = project.cli("tick", "--now", "+2h", "--verbose")
    assert ticked.code == 0
    assert _echoed(ticked.stderr) == ["printed by last", "last  error  logged by last"]
    assert "printed by" not in resumed.stdout + ticked.stdout


def test_a_lone_surrogate_is_kept_and_echoed_escaped(project: Project) -> None:
    """A str with a lone surrogate cannot be written as UTF-8: the line is kept, and echoed,
    with the surrogate escaped as backslashreplace writes it, never dropped."""
    project.workflow("odd", "steps: [{id: a}]\n", """\
import sys


def a(ctx):
    print("before")
    print("\u00e9 \\udcff")
    print("err \\udcfe", file=sys.stderr)
    ctx.log.info("log \\udcfd")
    print("after")
    return 1
""")
    started = project.cli("start", "odd", "--run-id", "o1", "--verbose")
    assert started.code == 0, started.stderr
    assert started.stderr.splitlines()[:5] == [
        "before", "\u00e9 \\udcff", "err \\udcfe", "a  info  log \\udcfd", "after"]
    kept = [(r["stream"], r["text"]) for r in project.json("logs", "o1")]
    assert kept == [("stdout", "before"), ("stdout", "\u00e9 \\udcff"), ("stderr", "err \\udcfe"),
                    ("log", "log \\udcfd"), ("stdout", "after")]
    history = project.json("show", "o1")["history"]
    assert [e["message"] for e in history if e["type"] == "log"] == ["log \\udcfd"]


def test_verbose_lasts_for_its_command_only(project: Project) -> None:
    project.workflow("talk", MANIFEST, MODULE)
    loud = project.run("start", "talk", "--verbose")  # in one process, like a CliRunner test
    assert "printed by greet" in loud.stderr
    quiet = project.run("start", "talk")
    assert quiet.code == 0 and _echoed(quiet.stderr) == []


def test_verbose_echoes_as_it_happens(project: Project) -> None:
    """A line a step prints shows on stderr while the step is still executing."""
    go = project.root / "go"
    project.workflow("slow", "steps: [{id: wait_for_go}]\n", f"""\
import os
import time


def wait_for_go(ctx):
    print("started; waiting for go")
    deadline = time.monotonic() + 20
    while not os.path.exists({str(go)!r}) and time.monotonic() < deadline:
        time.sleep(0.02)
    return os.path.exists({str(go)!r})
""")
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "start", "slow", "--verbose",
         "--json"], cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 15
        seen = b""
        while b"waiting for go" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([proc.stderr], [], [], 0.1)
            if ready:
                seen += os.read(proc.stderr.fileno(), 4096)
        assert b"started; waiting for go" in seen  # the step has not returned yet
        assert proc.poll() is None
        go.touch()
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    assert json.loads(out)["output"] is True


def test_help_names_verbose(project: Project) -> None:
    for command in ("start", "resume", "tick"):
        out = project.run(command, "--help")
        assert "--verbose" in out.stdout, command


PAYS = """\
def charge(ctx):
    with open("charges.txt", "a") as fh:
        fh.write(ctx.run_id + "\\n")  # the side effect, before the step prints
    for i in range(200):
        print("charged", i)
    ctx.log.info("charged")
    return {"charged": True}


def receipt(ctx):
    return 1
"""


def test_a_stderr_that_cannot_take_the_echo_never_fails_the_step(project: Project) -> None:
    """What a step prints is not state: an echo that fails (`2>/dev/full`, `2>&-`, a reader
    gone) is dropped, the step goes on, and its output is kept for `wfrun logs`."""
    project.workflow("pay", "steps:\n  - id: charge\n  - id: receipt\n", PAYS)
    base = [sys.executable, "-m", "wfrun", *project.base_args()]
    with open("/dev/full", "w") as full:  # every write: ENOSPC
        proc = subprocess.run([*base, "start", "pay", "--run-id", "full", "--verbose"],
                              cwd=project.root, stdout=subprocess.PIPE, stderr=full, text=True)
    assert proc.returncode == 0, proc.stdout
    closed = subprocess.run([*base, "start", "pay", "--run-id", "closed", "--verbose"],
                            cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True,
                            preexec_fn=lambda: os.close(2))
    assert closed.returncode == 0, closed.stdout
    for run_id in ("full", "closed"):
        shown = project.json("show", run_id)
        assert shown["status"] == "completed", shown
        assert project.run("logs", run_id).stdout.count("charged") == 201
    assert (project.root / "charges.txt").read_text().split() == ["full", "closed"]
