"""A finished run removed by hand as docs/state-directory.md ("Removing runs") says: what it
leaves (its entry in the run index) is harmless, doctor says so with exit 0, and `list --all`
corrects the index, and with it the count of `list`'s "… N more" line."""

from __future__ import annotations

from conftest import Project

T = """
    steps:
      - id: a
"""
T_PY = """
def a(ctx):
    return 1
"""


def test_a_run_removed_by_hand_leaves_nothing_doctor_calls_a_problem(project: Project) -> None:
    project.workflow("t", T, T_PY)
    for i in range(23):
        assert project.run("start", "t", "--run-id", f"t{i:02d}").code == 0
    assert project.run("list").stdout.rstrip().endswith("… 3 more; use --limit N or --all")
    run = "t00"  # the oldest: beyond list's first page
    for name in (f"runs/{run}.json", f"runs/.{run}.json.spare", f"runs/.{run}.json.prev",
                 f"runs/{run}.history.jsonl", f"runs/{run}.log.jsonl", f"locks/{run}.lock",
                 f"locks/{run}.exec"):
        (project.state / name).unlink(missing_ok=True)

    doctor = project.run("doctor")
    assert doctor.code == 0, doctor
    assert "warning:" in doctor.stderr and "there is no such run" in doctor.stderr

    assert project.run("list", "--all").code == 0
    assert project.run("list").stdout.rstrip().endswith("… 2 more; use --limit N or --all")
    clean = project.run("doctor")
    assert clean.code == 0 and "warning" not in clean.stderr, clean


def test_an_index_entry_a_killed_write_left_under_another_status_is_a_note(
        project: Project) -> None:
    """A resume killed after it listed the run under its new status and before it wrote the
    snapshot (WFRUN_FAULT, see docs/guarantees.md) leaves that entry: queries skip it, doctor
    says so and exits 0."""
    project.workflow("susp", "steps:\n  - id: a\n    wait: true\n")
    assert project.run("start", "susp", "--run-id", "d1").code == 0
    killed = project.cli("resume", "d1", "--step", "a", "--data", "{}",
                         env={"WFRUN_FAULT": "kill@4"})
    assert killed.code == 137, killed
    assert project.json("show", "d1")["status"] == "suspended"  # the resume did not happen
    doctor = project.run("doctor")
    assert doctor.code == 0, doctor
    assert "is under completed, but that run is suspended" in doctor.stderr
    # the resume made again goes through, and the index is right again
    assert project.run("resume", "d1", "--step", "a", "--data", "{}").code == 0
    assert project.json("list", "--status", "completed")[0]["run_id"] == "d1"
