"""`wfrun prune`: old finished runs go, with their child runs, history, logs and locks; open
runs, recent runs and child runs of a kept parent stay. Old runs are made with the testing
harness's fake clock (in 2020), in the same state directory the command then prunes."""

from __future__ import annotations

from conftest import Project

from wfrun.testing import Harness


def _workflows(project: Project) -> None:
    project.workflow("job", """
        steps:
          - id: work
    """, """
        def work(ctx):
            print("working")
            if ctx.input.get("fail"):
                raise RuntimeError("boom")
            return 1
    """)
    project.workflow("gate", """
        steps:
          - id: ok
            wait: true
    """)
    project.workflow("parent", """
        steps:
          - id: call
            workflow: job
          - id: confirm
            wait: true
    """)


def _kept_of(project: Project, run_id: str) -> tuple[bool, int, int]:
    """What the store keeps of a run: whether it is there, its history events, its log records
    (that no file of a deleted run is left is the file store's own test)."""
    store = project.store()
    return store.exists(run_id), len(store.read_history(run_id)), len(store.read_logs(run_id)[0])


def _old_runs(project: Project) -> Harness:
    h = Harness(project.workflows, project.state, start="2020-01-01T00:00:00Z")
    h.start("job", {}, run_id="old-done")
    h.start("job", {"fail": True}, run_id="old-failed")
    h.start("gate", run_id="old-cancelled")
    h.cancel("old-cancelled")
    h.start("gate", run_id="old-open")
    h.start("parent", run_id="old-parent")
    h.resume("old-parent", {})
    h.start("parent", run_id="open-parent")  # its child completed in 2020; it waits still
    return h


def test_prune_deletes_old_finished_runs_with_their_child_runs_and_nothing_else(
    project: Project,
) -> None:
    _workflows(project)
    _old_runs(project)
    assert project.run("start", "job", "--run-id", "new-done").code == 0
    there, events, records = _kept_of(project, "old-done")
    assert there and events and records
    report = project.json("prune", "--older-than", "30d")
    assert report["dry_run"] is False and report["errors"] == []
    ids = [r["run_id"] for r in report["runs"]]  # oldest first; a parent before its children
    assert sorted(ids) == [
        "old-cancelled", "old-done", "old-failed", "old-parent", "old-parent--call"]
    assert ids.index("old-parent") < ids.index("old-parent--call")
    listed = {r["run_id"]: r["status"] for r in project.json("list", "--children")}
    assert listed == {"new-done": "completed", "old-open": "suspended",
                      "open-parent": "suspended", "open-parent--call": "completed"}
    for gone in ("old-done", "old-failed", "old-cancelled", "old-parent"):
        assert _kept_of(project, gone) == (False, 0, 0), gone  # its history and logs too
        assert project.run("show", gone).code == 4
    assert project.json("show", "open-parent")["steps"]["call"]["status"] == "completed"
    assert project.json("prune", "--older-than", "30d")["runs"] == []  # nothing left to do
    assert project.run("doctor").code == 0


def test_status_and_workflow_choose_among_old_finished_runs(project: Project) -> None:
    _workflows(project)
    _old_runs(project)
    failed = project.json("prune", "--older-than", "1d", "--status", "failed")
    assert [r["run_id"] for r in failed["runs"]] == ["old-failed"]
    gate = project.json("prune", "--older-than", "1d", "--workflow", "gate")
    assert [r["run_id"] for r in gate["runs"]] == ["old-cancelled"]
    human = project.run("prune", "--older-than", "1d", "--status", "completed")
    assert human.code == 0
    assert "deleted 3 run(s) last changed before" in human.stdout
    assert "old-done" in human.stdout and "old-parent--call" in human.stdout


def test_a_dry_run_and_bad_input_change_nothing(project: Project) -> None:
    _workflows(project)
    _old_runs(project)
    before = project.snapshots()
    dry = project.json("prune", "--older-than", "30d", "--dry-run")
    assert dry["dry_run"] is True and len(dry["runs"]) == 5
    human = project.run("prune", "--older-than", "30d", "--dry-run")
    assert "would delete 5 run(s)" in human.stdout
    for args, message in [
        ((), "Missing option '--older-than'"),
        (("--older-than", "soon"), "--older-than: 'soon' is not a duration"),
        (("--older-than", "1d", "--status", "suspended"), "only finished runs are pruned"),
    ]:
        out = project.run("prune", *args)
        assert out.code == 2 and message in out.stderr, (args, out.stderr)
    assert project.snapshots() == before


def test_a_busy_run_is_kept_and_an_unreadable_one_is_reported_and_left_alone(
    project: Project,
) -> None:
    """A run another process holds is kept; one whose file in the file store was torn by hand
    is reported and left alone."""
    from wfrun.store.file import FileStore

    _workflows(project)
    _old_runs(project)
    broken = project.state / "runs" / "old-failed.json"
    broken.write_bytes(broken.read_bytes()[:40])  # torn
    held = FileStore(project.state).claim("old-done")  # as a process executing it would
    assert held is not None
    try:
        out = project.run("prune", "--older-than", "30d", "--json")
    finally:
        held.release()
    assert out.code == 5, out.stderr  # an unreadable snapshot outranks a busy run
    assert "old-failed.json" in out.stderr and "run old-done was kept" in out.stderr
    report = out.json()
    assert [e["run_id"] for e in report["errors"]] == ["old-done"]
    assert sorted(r["run_id"] for r in report["runs"]) == [
        "old-cancelled", "old-parent", "old-parent--call"]
    assert broken.exists() and project.json("show", "old-done")["status"] == "completed"
    broken.unlink()
    again = project.run("prune", "--older-than", "30d", "--json")
    assert again.code == 0 and [r["run_id"] for r in again.json()["runs"]] == ["old-done"]
