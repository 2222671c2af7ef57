"""Permissions: the state directory is private (0700, files 0600) whatever the umask, and a state
directory others could write to, or that belongs to someone else, is refused (exit 5)."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
from pathlib import Path

import pytest

from ._relutil import Lab, Result, future


def _wfrun(lab: Lab, state: Path, *args: str, umask: int = 0o000) -> Result:
    """`umask UMASK; exec wfrun ...`: a process of its own (forked warm) with that umask."""
    return lab.cmd(state, *args, env={"WFRUN_TEST_LEDGER": os.devnull}, umask=umask)


def test_umask_000_still_gives_0700_dirs_and_0600_files(lab: Lab) -> None:
    state = lab.root / "deep" / "state"  # parents created too
    token = json.dumps({"token": "t"})
    for args in (["start", "flow", "--run-id", "r1"], ["start", "flow", "--run-id", "r2"],
                 ["start", "poll", "--run-id", "r3"], ["resume", "r1", "--data", token],
                 ["cancel", "r2"], ["tick", "--now", future()], ["list"], ["doctor"]):
        proc = _wfrun(lab, state, *args)
        assert proc.rc == 0, (args, proc.stderr)
    seen = {"dir": 0, "file": 0}
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        kind = "dir" if path.is_dir() else "file"
        seen[kind] += 1
        assert mode == (0o700 if kind == "dir" else 0o600), f"{path}: {mode:o}"
    # runs, due buckets, locks, keys; snapshots, histories, lock files, index entries, the key
    assert seen["dir"] >= 6 and seen["file"] >= 10, seen


@pytest.mark.parametrize("mode", [0o770, 0o707], ids=["group-writable", "world-writable"])
def test_a_state_dir_others_can_write_is_refused(lab: Lab, mode: int) -> None:
    state = lab.root / "state"
    state.mkdir()
    state.chmod(mode)
    for args in (["start", "flow"], ["list"], ["tick"], ["show", "r1"], ["doctor"]):
        proc = _wfrun(lab, state, *args, umask=0o022)
        assert proc.rc == 5, (args, proc.rc, proc.stderr)
        assert "Traceback" not in proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and str(state) in lines[0], proc.stderr
        assert "writable by group or others" in lines[0] and "chmod 700" in lines[0]
    assert list(state.iterdir()) == [] and stat.S_IMODE(state.stat().st_mode) == mode


def test_a_private_but_readable_state_dir_is_tightened_to_0700(lab: Lab) -> None:
    state = lab.root / "state"
    state.mkdir()
    state.chmod(0o755)
    lab.ok(state, "start", "flow", "--run-id", "r1")
    assert stat.S_IMODE(state.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o755, 0o700])
def test_a_directory_holding_other_files_is_no_state_dir_and_is_left_alone(
        lab: Lab, mode: int) -> None:
    state = lab.root / "somewhere"  # `--state-dir ..` or `/` by mistake
    state.mkdir()
    (state / "notes.txt").write_text("mine\n")
    state.chmod(mode)
    for args in (["start", "flow"], ["list"], ["tick"], ["show", "r1"], ["doctor"]):
        proc = _wfrun(lab, state, *args, umask=0o022)
        assert proc.rc == 5, (args, proc.rc, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert f"{state} is not a wfrun state directory" in proc.stderr
        assert "notes.txt" in proc.stderr and "new or empty directory" in proc.stderr
    assert [p.name for p in state.iterdir()] == ["notes.txt"]
    assert stat.S_IMODE(state.stat().st_mode) == mode


def test_a_file_where_the_state_dir_should_be_is_said_to_be_one(lab: Lab) -> None:
    state = lab.root / "state"
    state.write_text("not a directory\n")
    for args in (["start", "flow"], ["list"], ["pending"], ["tick"], ["show", "r1"],
                 ["doctor"]):
        proc = _wfrun(lab, state, *args, umask=0o022)
        assert proc.rc == 5, (args, proc.rc, proc.stderr)
        assert f"state directory {state} is not a directory" in proc.stderr, proc.stderr
        assert "does not exist" not in proc.stderr and "Traceback" not in proc.stderr
    assert state.read_text() == "not a directory\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs "
                    "root (chown); run the suite as root to cover the ownership check")
def test_a_state_dir_owned_by_someone_else_is_refused(lab: Lab) -> None:
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no 'nobody' user to give the directory to")
    state = lab.root / "state"
    state.mkdir(mode=0o700)
    os.chown(state, nobody, -1)
    for args in (["start", "flow"], ["list"], ["doctor"]):
        proc = _wfrun(lab, state, *args, umask=0o022)
        assert proc.rc == 5, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "owned by another user" in proc.stderr and str(state) in proc.stderr
    assert list(state.iterdir()) == []


def test_missing_parents_of_the_state_dir_are_never_writable_by_others(lab: Lab) -> None:
    """`--state-dir a/b/.wfstate` under umask 000 makes `a` and `a/b` as `mkdir -p` would,
    less write access for group and others (issue 18, point 13)."""
    state = lab.root / "a" / "b" / ".wfstate"
    proc = _wfrun(lab, state, "start", "flow", "--run-id", "r1")
    assert proc.rc == 0, proc.stderr
    for parent in (lab.root / "a", lab.root / "a" / "b"):
        assert stat.S_IMODE(parent.stat().st_mode) == 0o755, parent
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    strict = lab.root / "c" / "d" / ".wfstate"  # a stricter umask is kept for the parents
    assert _wfrun(lab, strict, "start", "flow", "--run-id", "r1", umask=0o077).rc == 0
    assert stat.S_IMODE((lab.root / "c").stat().st_mode) == 0o700


def _modes(state: Path) -> dict[str, int]:
    return {str(p.relative_to(state)): stat.S_IMODE(p.lstat().st_mode)
            for p in [state, *state.rglob("*")]}


def test_a_state_dir_restored_with_open_modes_is_reported_and_made_private_again(
        lab: Lab) -> None:
    """A backup restored as 0644 files and 0755 directories: doctor reports what others can
    read; the next writes make each file 0600 again, spares (recycled inodes) included."""
    original = lab.root / "original"
    for args in (["start", "flow", "--run-id", "r1"], ["start", "poll", "--run-id", "r2"],
                 ["show", "r1"]):
        assert _wfrun(lab, original, *args, umask=0o022).rc == 0
    state = lab.root / "restored"
    shutil.copytree(original, state)  # then as a restore under umask 022 leaves it
    for path in [state, *state.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    doctor = _wfrun(lab, state, "doctor", "--json", umask=0o022)
    assert doctor.rc == 5, doctor.stderr
    report = json.loads(doctor.stdout)
    assert {p["kind"] for p in report["problems"]} == {"mode"}
    flagged = {str(Path(p["path"]).relative_to(state)) for p in report["problems"]}
    assert {"runs", "keys", "locks", "due", "runs/r1.json", "runs/r1.history.jsonl",
            "keys/url.key", "locks/r1.exec"} <= flagged, flagged
    assert any(name.startswith("runs/.r1.json.") for name in flagged)  # the spare: old state
    assert not any(name.endswith(".lock") for name in flagged)  # empty: nothing to read
    assert all("chmod" in p["reason"] and ("mode 644" in p["reason"] or "mode 755" in p["reason"])
               for p in report["problems"])
    assert stat.S_IMODE(state.stat().st_mode) == 0o700  # (every command tightens the root)

    token = json.dumps({"token": "t"})
    for args in (["resume", "r1", "--data", token], ["tick", "--now", future()],
                 ["start", "flow", "--run-id", "r3"], ["cancel", "r3"], ["show", "r1"]):
        proc = _wfrun(lab, state, *args, umask=0o022)
        assert proc.rc == 0, (args, proc.stderr)
    # what holds state is private again; empty files and the manifest cache (written once,
    # never again: doctor keeps naming them, with the chmod to run) are as they were
    wrong = {path: f"{mode:o}" for path, mode in _modes(state).items() if mode & 0o077
             and not path.endswith(".lock") and not path.startswith(("due/", "cache"))}
    assert not wrong, wrong
    left = json.loads(_wfrun(lab, state, "doctor", "--json", umask=0o022).stdout)["problems"]
    assert {Path(p["path"]).relative_to(state).parts[0] for p in left} <= {"due", "cache"}
    for name in ("runs/r1.json", "runs/r2.json", "runs/r1.history.jsonl", "keys/url.key"):
        assert _modes(state)[name] == 0o600, name
    assert any(p.name.startswith(".r1.json.") for p in (state / "runs").iterdir())
