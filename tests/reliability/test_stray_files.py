"""Stray files in the state directory (made by hand, by a restore, by another program): each one
costs itself only. It is reported with its path, the other runs keep working, and `wfrun doctor`
finds it (issue 18)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from wfrun.store._snapshot import render_snapshot
from wfrun.store.file import FileStore

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
    (state / "due" / "2020010100").mkdir(mode=0o700)  # not an hour (YYYYMMDDTHH)
    tick = lab.cmd(state, "tick", "--now", future())
    assert tick.rc == 0 and "Traceback" not in tick.stderr, tick
    assert load(state, "n1").status == "completed"
    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5
    assert sorted((p["kind"], Path(p["path"]).name) for p in doctor.json()["problems"]) == [
        ("index", "0notes.txt"), ("index", "2020010100")]


@pytest.mark.parametrize("how", ["copy", "symlink", "hard-link"])
def test_a_snapshot_under_another_runs_name_is_refused(lab: Lab, how: str) -> None:
    state = lab.root / "state"
    lab.ok(state, "start", "flow", "--run-id", "alpha")
    alpha, beta = state / "runs" / "alpha.json", state / "runs" / "beta.json"
    if how == "copy":
        beta.write_bytes(alpha.read_bytes())
        beta.chmod(0o600)
    elif how == "symlink":
        beta.symlink_to("alpha.json")
    else:
        os.link(alpha, beta)
    before = alpha.read_bytes()

    for args in (["resume", "beta", "--data", '{"token": "t"}'], ["show", "beta"],
                 ["cancel", "beta"]):
        out = lab.cmd(state, *args)
        assert out.rc == 5 and out.stdout == "", (args, out)
        errors = out.error_lines()
        assert len(errors) == 1 and str(beta) in errors[0], out.stderr
        assert "holds run 'alpha', not 'beta'" in errors[0]
    assert alpha.read_bytes() == before and load(state, "alpha").status == "suspended"

    listed = lab.cmd(state, "list", "--json")
    assert listed.rc == 5 and [r["run_id"] for r in listed.json()] == ["alpha"], listed
    assert len(listed.error_lines()) == 1 and str(beta) in listed.stderr
    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5
    assert [(p["kind"], p["path"]) for p in doctor.json()["problems"]] == [
        ("snapshot", str(beta))]
    lab.ok(state, "resume", "alpha", "--data", '{"token": "t"}')
    assert load(state, "alpha").status == "completed"


@pytest.mark.parametrize("name", ["foo bar.json", "notes.v2.json", "x" * 65 + ".json"])
def test_a_stray_json_file_in_runs_is_reported_with_its_path_and_skipped(lab: Lab,
                                                                        name: str) -> None:
    state = lab.root / "state"
    lab.ok(state, "start", "flow", "--run-id", "alpha")
    stray = state / "runs" / name
    stray.write_bytes((state / "runs" / "alpha.json").read_bytes())
    stray.chmod(0o600)  # (a mode others can read is a problem of its own)
    for args in (["list", "--json"], ["pending", "--json"]):
        out = lab.cmd(state, *args)
        assert "Traceback" not in out.stderr, out.stderr
        assert out.rc == 5 and [r["run_id"] for r in out.json()] == ["alpha"], (args, out)
        errors = out.error_lines()
        assert len(errors) == 1 and str(stray) in errors[0] and "not a run's snapshot" in \
            errors[0], out.stderr
    human = lab.cmd(state, "list")
    assert human.rc == 5 and "alpha" in human.stdout and str(stray) in human.stderr
    assert FileStore(state).run_ids() == ["alpha"]  # what shell completion offers
    doctor = lab.cmd(state, "doctor", "--json")
    assert doctor.rc == 5 and doctor.json()["runs"] == 1
    assert [(p["kind"], p["path"]) for p in doctor.json()["problems"]] == [
        ("snapshot", str(stray))]
    assert lab.cmd(state, "tick", "--now", future()).rc == 0
    assert stray.exists()


def test_a_step_started_record_of_another_run_is_never_taken_for_this_one(lab: Lab) -> None:
    """`locks/RUN.exec` keeps a "step started" state while a step executes: one copied from
    another run (with the revision this run would expect) is ignored, the snapshot is the
    state."""
    state = lab.root / "state"
    lab.ok(state, "start", "flow", "--run-id", "alpha")
    lab.ok(state, "start", "flow", "--run-id", "beta")
    envelope = json.loads((state / "runs" / "alpha.json").read_bytes())
    beta = load(state, "beta")
    envelope["run"]["revision"] = beta.revision + 1  # what beta's next record would carry
    envelope["run"]["status"] = "running"
    (state / "locks" / "beta.exec").write_bytes(
        render_snapshot(envelope["schema_version"], envelope["due"], envelope["run"]))
    shown = lab.cmd(state, "show", "beta", "--json")
    assert shown.rc == 0, shown
    assert shown.json()["run_id"] == "beta" and shown.json()["status"] == "suspended"
    lab.ok(state, "resume", "beta", "--data", '{"token": "t"}')
    assert load(state, "beta").status == "completed"
    assert load(state, "alpha").status == "suspended"


def test_a_due_entry_in_another_hours_bucket_is_one_line_naming_it_once(lab: Lab) -> None:
    state = _napping(lab, "n1")
    [entry] = (state / "due").glob("*/*~n1")
    other = state / "due" / "20991231T23"
    other.mkdir(mode=0o700)
    moved = other / entry.name
    entry.rename(moved)
    doctor = lab.cmd(state, "doctor")
    assert doctor.rc == 5, doctor
    [line] = [line for line in doctor.stdout.splitlines() if "another hour" in line]
    assert line.startswith(f"due-index entry {moved} is in the bucket of another hour; tick "
                           "visits its run but never removes the entry: delete it"), line
    assert "run n1" not in line
