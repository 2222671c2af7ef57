"""Stray files in the state directory (made by hand, by a restore, by another program): each one
costs itself only. It is reported with its path, the other runs keep working, and `wfrun doctor`
finds it (issue 18)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ._relutil import Lab, future, load

BAD_IDS = {"bang": "bad!id", "empty": "", "too-long": "x" * 65}


def _napping(lab: Lab, *run_ids: str) -> Path:
    state = lab.root / "state"
    for run_id in run_ids:
        lab.ok(state, "start", "nap", "--run-id", run_id)
    return state


@pytest.mark.parametrize("kind", BAD_IDS)
def test_a_due_entry_naming_no_valid_run_costs_that_entry_only(lab: Lab, kind: str) -> None:
    state = _napping(lab, "n1", "n2")
    bucket = next((state / "due").iterdir())
    stray = bucket / f"{bucket.name}0000.000Z~{BAD_IDS[kind]}"
    stray.touch()

    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5, doctor
    assert [(p["kind"], p["path"]) for p in doctor.json()["problems"]] == [
        ("index", str(stray))]
    assert stray.exists(), "doctor changed the state directory"

    tick = lab.cmd(state, "tick", "--now", future())
    assert "Traceback" not in tick.stderr, tick.stderr
    assert tick.rc == 1, tick  # one error: the entry, reported and dropped
    errors = tick.error_lines()
    assert len(errors) == 1 and str(stray) in errors[0] and "removed" in errors[0], tick.stderr
    assert not stray.exists()
    assert load(state, "n1").status == load(state, "n2").status == "completed"
    again = lab.cmd(state, "tick", "--now", future())
    assert again.rc == 0 and again.stderr == "", again
    assert lab.cmd(state, "doctor").rc == 0


def test_stray_names_in_the_due_directory_are_ignored_by_tick_and_reported_by_doctor(
        lab: Lab) -> None:
    state = _napping(lab, "n1")
    (state / "due" / "0notes.txt").write_text("mine")  # sorts before every hour bucket
    (state / "due" / "2020010100").mkdir()  # not an hour (YYYYMMDDTHH)
    tick = lab.cmd(state, "tick", "--now", future())
    assert tick.rc == 0 and "Traceback" not in tick.stderr, tick
    assert load(state, "n1").status == "completed"
    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5
    assert sorted((p["kind"], Path(p["path"]).name) for p in doctor.json()["problems"]) == [
        ("index", "0notes.txt"), ("index", "2020010100")]
