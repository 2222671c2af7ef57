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
