"""`wfrun retry` of a step that failed after a `rerun(context=...)` keeps `ctx.run.context`
(the JSON passed to its previous rerun(), SPEC §2), as the automatic retries of `retry:` do: a
polling cursor is not lost."""

from __future__ import annotations

from conftest import Project


def test_retry_keeps_the_context_of_the_latest_rerun(project: Project) -> None:
    project.workflow("rc", """\
        name: rc
        steps:
          - id: s
            retry: {max_attempts: 2}
        """, """\
        def s(ctx):
            if ctx.run.runs == 1:
                ctx.flow.rerun("1s", context={"n": 1})
                return None
            raise RuntimeError(f"boom, context {ctx.run.context!r}")
        """)
    assert project.run("start", "rc", "--run-id", "rc1").code == 0
    assert project.run("tick", "--now", "+1m").code == 0  # the rerun: it raises, retried
    assert project.run("tick", "--now", "+2m").code == 1  # the automatic retry: failed
    failed = project.json("show", "rc1")
    assert failed["status"] == "failed"
    assert failed["error"]["message"] == "boom, context {'n': 1}"
    assert project.run("retry", "rc1").code == 0  # raises again: waits for its retry
    assert project.run("tick", "--now", "+1h").code == 1  # and that one raises too
    doc = project.json("show", "rc1")
    assert (doc["status"], doc["steps"]["s"]["runs"]) == ("failed", 5)
    raised = [e["error"]["message"] for e in doc["history"] if e.get("error")
              and e["type"] in ("retried", "step_failed")]
    assert raised == ["boom, context {'n': 1}"] * 4
