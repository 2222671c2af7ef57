"""Edge cases found while documenting: deleted snapshots, printing steps, zero timeouts."""

from __future__ import annotations

from conftest import Project

POLL = """
steps:
  - id: poll
"""
POLL_PY = """
def poll(ctx):
    print("hello from the step")
    if ctx.run.runs == 1:
        ctx.flow.rerun("1m")
    return ctx.run.runs
"""


def test_tick_drops_the_index_entry_of_a_snapshot_deleted_by_hand(project: Project) -> None:
    project.workflow("poll", POLL, POLL_PY)
    project.json("start", "poll", "--run-id", "gone")
    (project.state / "runs" / "gone.json").unlink()
    first = project.run("tick", "--now", "2030-01-01T00:00:00Z")
    assert first.code == 0, first.stderr
    assert first.stdout == ""
    assert not any((project.state / "due").rglob("*~gone"))


def test_what_a_step_prints_goes_to_stderr_and_json_stays_clean(project: Project) -> None:
    project.workflow("poll", POLL, POLL_PY)
    out = project.cli("start", "poll", "--json", "--verbose")
    assert out.code == 0, out.stderr
    assert out.json()["status"] == "waiting"
    assert "hello from the step" in out.stderr


def test_a_zero_timeout_is_due_at_once_not_the_default(project: Project) -> None:
    project.workflow("w", """
        steps:
          - id: ask
        """, """
        def ask(ctx):
            ctx.flow.suspend(timeout=0, on_timeout="fail")
        """)
    doc = project.json("start", "w")
    entry = doc["suspended"][0]
    assert entry["deadline"] == entry["since"]
    ticked = project.run("tick", "--json")
    assert ticked.code == 1
    assert ticked.json()["advanced"][0]["reason"] == "timeout"
    assert "failed" in ticked.stderr
