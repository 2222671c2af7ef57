"""A foreach iteration, or a step inside a child run, waiting for a retry says what its last
execution raised as a plain step does: `show` prints it with its frames (the run document's
`waiting` entry has its `error`), and the `tick` that ran it says it on stderr, addressed
from the top-level run (`each[1]`, `kid/a`)."""

from __future__ import annotations

from conftest import Project


def _foreach(project: Project) -> None:
    project.workflow("fe", """\
        steps:
          - id: items
          - id: each
            foreach: items
            retry: {max_attempts: 3, delay: 1m}
        """, """\
        def items(ctx):
            return [1, 2]


        def each(ctx):
            if ctx.index == 1:
                raise ValueError(f"bad item {ctx.item} (run {ctx.run.runs})")
            return ctx.item
        """)


def kid_that_raises(project: Project) -> None:
    """Workflow `kid`: one step `a` that raises KeyError on every run, retried after 1m."""
    project.workflow("kid", """\
        steps:
          - id: a
            retry: {max_attempts: 3, delay: 1m}
        """, """\
        def a(ctx):
            raise KeyError(f"nope {ctx.run.runs}")
        """)


def _nested(project: Project) -> None:
    kid_that_raises(project)
    project.workflow("pr", """\
        steps:
          - id: nap
            sleep: 1m
          - id: kid
            workflow: kid
        """, "")


def _raised_lines(stdout: str, address: str) -> list[str]:
    lines = stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith(f"⏲ {address} retry due at"))
    return lines[at + 1:at + 3]


def test_a_foreach_iteration_waiting_for_a_retry_says_what_it_raised(project: Project) -> None:
    _foreach(project)
    started = project.run("start", "fe", "--run-id", "fe1")
    assert started.code == 0
    where = project.workflows / "fe.py"
    assert _raised_lines(started.stdout, "each[1]") == [
        "    its last execution raised ValueError: bad item 2 (run 1)",
        f'      File "{where}", line 7, in each']
    doc = project.json("show", "fe1")
    [entry] = doc["waiting"]
    assert (entry["step"], entry["kind"], entry["error"]["message"]) == (
        "each[1]", "retry", "bad item 2 (run 1)")
    ticked = project.run("tick", "--now", entry["due_at"])
    assert ticked.code == 0 and "fe1  each[1]  retry -> waiting" in ticked.stdout
    assert ("warning: run fe1: step 'each[1]' raised ValueError: bad item 2 (run 2) at "
            f"{where}:7; it is retried at") in ticked.stderr
    shown = project.run("show", "fe1").stdout
    assert _raised_lines(shown, "each[1]")[0] == (
        "    its last execution raised ValueError: bad item 2 (run 2)")


def test_a_step_of_a_child_run_waiting_for_a_retry_says_what_it_raised(
        project: Project) -> None:
    _nested(project)
    assert project.run("start", "pr", "--run-id", "pr1").code == 0
    due = project.json("show", "pr1")["waiting"][0]["due_at"]
    ticked = project.run("tick", "--now", due)  # the sleep ends: the child's step raises
    assert ticked.code == 0 and "pr1  nap  sleep -> waiting" in ticked.stdout
    where = project.workflows / "kid.py"
    assert (f"warning: run pr1: step 'kid/a' raised KeyError: 'nope 1' at {where}:2; it is "
            "retried at") in ticked.stderr
    doc = project.json("show", "pr1")
    [entry] = doc["waiting"]
    assert (entry["step"], entry["kind"], entry["error"]["message"]) == (
        "kid/a", "retry", "'nope 1'")
    assert _raised_lines(project.run("show", "pr1").stdout, "kid/a") == [
        "    its last execution raised KeyError: 'nope 1'",
        f'      File "{where}", line 2, in a']


def test_a_tick_advancing_a_parent_and_its_child_says_the_childs_retry_once(
        project: Project) -> None:
    """The child's retry fires before the parent's sleep ends, and one tick advances both: the
    child's step raises again, and the tick says so once, addressed from the parent."""
    kid_that_raises(project)
    project.workflow("pr", """\
        steps:
          - id: nap
            sleep: 2m
          - id: kid
            workflow: kid
            needs: []
        """, "")
    started = project.run("start", "pr", "--run-id", "pr1")
    assert started.code == 0
    ticked = project.run("tick", "--now", "+3m")
    assert ticked.code == 0
    assert ticked.stdout.splitlines() == ["pr1--kid  a  retry -> waiting",
                                          "pr1  nap  sleep -> waiting"]
    where = project.workflows / "kid.py"
    [said] = [line for line in ticked.stderr.splitlines() if "nope 2" in line]
    assert said.startswith(f"warning: run pr1: step 'kid/a' raised KeyError: 'nope 2' at "
                           f"{where}:2; it is retried at ")
