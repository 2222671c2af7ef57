"""A name in a due-index bucket that names no valid run id and sorts after every time of the
hour (`touch due/BUCKET/garbage`): tick removes and reports it once the bucket is listed, as
doctor says, instead of stopping at it for good (doctor then kept exiting 5); a valid entry of
another hour that sorts there is left for doctor to report."""

from __future__ import annotations

from conftest import END_OF_TIME, Project

NAP = "steps:\n  - {id: nap, sleep: 1h}\n  - {id: after, handler: done}\n"
DONE = "def done(ctx):\n    return 1\n"


def test_tick_removes_a_stray_name_that_sorts_after_every_time(project: Project) -> None:
    project.workflow("nap", NAP, DONE)
    assert project.run("start", "nap", "--run-id", "s1").code == 0
    [bucket] = (project.state / "due").iterdir()
    stray = bucket / "garbage"
    stray.touch()
    other_hour = bucket / "99991231T235959.000Z~s1"  # doctor's "bucket of another hour"
    other_hour.touch()
    doctor = project.cli("doctor")
    assert doctor.code == 5 and f"rm {stray}" in doctor.stdout + doctor.stderr
    tick = project.cli("tick", "--now", END_OF_TIME)
    assert tick.code == 1, tick
    [said] = [line for line in tick.stderr.splitlines() if "garbage" in line]
    assert f"due-index entry {stray} does not name a valid run id" in said
    assert "it was removed" in said
    assert not stray.exists() and other_hour.exists()
    other_hour.unlink()
    assert project.cli("doctor").code == 0
    assert project.cli("tick", "--now", END_OF_TIME).code == 0  # reported once
