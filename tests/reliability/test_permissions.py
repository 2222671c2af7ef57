"""Permissions: the state directory is private (0700, files 0600) whatever the umask, and a state
directory others could write to, or that belongs to someone else, is refused (exit 5)."""

from __future__ import annotations

import json
import os
import pwd
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from ._relutil import Lab, future, write_workflows


def _sh(workflows: Path, state: Path, *args: str, umask: str = "000") -> subprocess.CompletedProcess[str]:
    command = " ".join(shlex.quote(a) for a in [
        sys.executable, "-m", "wfrun", "--state-dir", str(state), "--workflows-dir", str(workflows),
        *args])
    return subprocess.run(["sh", "-c", f"umask {umask}; exec {command}"], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "WFRUN_TEST_LEDGER": os.devnull})


def test_umask_000_still_gives_0700_dirs_and_0600_files(tmp_path: Path) -> None:
    workflows = write_workflows(tmp_path / "workflows")
    state = tmp_path / "deep" / "state"  # parents created too
    token = json.dumps({"token": "t"})
    for args in (["start", "flow", "--run-id", "r1"], ["start", "flow", "--run-id", "r2"],
                 ["start", "poll", "--run-id", "r3"], ["resume", "r1", "--data", token],
                 ["cancel", "r2"], ["tick", "--now", future()], ["list"], ["doctor"]):
        proc = _sh(workflows, state, *args)
        assert proc.returncode == 0, (args, proc.stderr)
    seen = {"dir": 0, "file": 0}
    for path in [state, *state.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        kind = "dir" if path.is_dir() else "file"
        seen[kind] += 1
        assert mode == (0o700 if kind == "dir" else 0o600), f"{path}: {mode:o}"
    # runs, due buckets, locks, keys; snapshots, histories, lock files, index entries, the key
    assert seen["dir"] >= 6 and seen["file"] >= 10, seen


@pytest.mark.parametrize("mode", [0o770, 0o707], ids=["group-writable", "world-writable"])
def test_a_state_dir_others_can_write_is_refused(tmp_path: Path, mode: int) -> None:
    workflows = write_workflows(tmp_path / "workflows")
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(mode)
    for args in (["start", "flow"], ["list"], ["tick"], ["show", "r1"], ["doctor"]):
        proc = _sh(workflows, state, *args, umask="022")
        assert proc.returncode == 5, (args, proc.returncode, proc.stderr)
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


@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory owned by another user needs "
                    "root (chown); run the suite as root to cover the ownership check")
def test_a_state_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("no 'nobody' user to give the directory to")
    workflows = write_workflows(tmp_path / "workflows")
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, nobody, -1)
    for args in (["start", "flow"], ["list"], ["doctor"]):
        proc = _sh(workflows, state, *args, umask="022")
        assert proc.returncode == 5, (args, proc.stderr)
        assert "Traceback" not in proc.stderr
        assert "owned by another user" in proc.stderr and str(state) in proc.stderr
    assert list(state.iterdir()) == []
