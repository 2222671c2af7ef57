"""A command whose execution left a step waiting for a retry says on stderr what it raised and
when it is retried (SPEC §5), as `tick` does: `start`, `resume`, `send`, `retry` and `fork` too, with
the line in the run document's `warnings` under --json; stdout shows the wait once, in its
`⏲` block."""

from __future__ import annotations

from conftest import Project

from .test_retry_waits_in_composites import kid_that_raises

WARNING = "warning: run {run}: step '{step}' raised {error} at {where}:2; it is retried at "


def _gate(project: Project) -> None:
    project.workflow("gate", """\
        steps:
          - id: ask
            wait: true
          - id: call
            retry: {max_attempts: 2, delay: 1m}
        """, """\
        def call(ctx):
            raise ConnectionError(f"attempt {ctx.run.runs} refused")
        """)


def _nested(project: Project) -> None:
    kid_that_raises(project)
    project.workflow("pr", """\
        steps:
          - id: kid
            workflow: kid
        """, "")


def test_start_says_a_step_waits_for_a_retry(project: Project) -> None:
    _gate(project)
    project.workflow("flaky", """\
        steps:
          - id: call
            retry: {max_attempts: 3, delay: 1m}
        """, (project.workflows / "gate.py").read_text())
    where = project.workflows / "flaky.py"
    out = project.run("start", "flaky", "--run-id", "f1")
    assert out.code == 0
    said = WARNING.format(run="f1", step="call", error="ConnectionError: attempt 1 refused",
                          where=where)
    assert out.stderr.startswith(said) and out.stderr.count("\n") == 1
    assert said not in out.stdout
    assert out.stdout.count("its last execution raised ConnectionError: attempt 1 refused") == 1
    doc = project.run("start", "flaky", "--run-id", "f2", "--json")
    [note] = doc.json()["warnings"]
    assert f"warning: {note}".startswith(said.replace("run f1", "run f2"))
    assert doc.stderr == f"warning: {note}\n"
    assert project.json("show", "f2")["warnings"] == []  # what a command did, not the run's state


def test_start_says_a_step_of_a_child_run_waits_for_a_retry(project: Project) -> None:
    _nested(project)
    out = project.run("start", "pr", "--run-id", "p1")
    assert out.code == 0
    assert out.stderr.startswith(WARNING.format(run="p1", step="kid/a", error="KeyError: 'nope 1'",
                                                where=project.workflows / "kid.py"))


def test_resume_retry_and_fork_say_a_step_waits_for_a_retry(project: Project) -> None:
    _gate(project)
    where = project.workflows / "gate.py"
    assert project.run("start", "gate", "--run-id", "g1").stderr == ""  # suspended: nothing
    resumed = project.run("resume", "g1", "--data", "{}")
    assert resumed.code == 0
    assert resumed.stderr.startswith(WARNING.format(
        run="g1", step="call", error="ConnectionError: attempt 1 refused", where=where))
    due = project.json("show", "g1")["waiting"][0]["due_at"]
    assert project.run("tick", "--now", due).code == 1  # its second and last attempt fails
    retried = project.run("retry", "g1")
    assert retried.code == 0
    assert retried.stderr.startswith(WARNING.format(
        run="g1", step="call", error="ConnectionError: attempt 3 refused", where=where))
    forked = project.run("fork", "g1", "--from", "call", "--run-id", "g2", "--json")
    assert forked.code == 0
    [note] = forked.json()["warnings"]
    assert note.startswith(WARNING.format(run="g2", step="call",
                                          error="ConnectionError: attempt 1 refused",
                                          where=where)[len("warning: "):])


def test_send_says_a_step_waits_for_a_retry(project: Project) -> None:
    project.workflow("ev", """\
        steps:
          - id: hear
          - id: call
            needs: [hear]
            retry: {max_attempts: 2, delay: 1m}
        """, """\
        def call(ctx):
            raise ConnectionError(f"attempt {ctx.run.runs} refused")


        def hear(ctx):
            return ctx.flow.wait_for_event("go")
        """)
    assert project.run("start", "ev", "--run-id", "e1").stderr == ""
    sent = project.run("send", "e1", "go")
    assert sent.code == 0
    assert sent.stderr.startswith(WARNING.format(
        run="e1", step="call", error="ConnectionError: attempt 1 refused",
        where=project.workflows / "ev.py"))
