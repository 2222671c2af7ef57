"""A lock file the file store cannot open (`locks/RUN.lock`, `locks/RUN.exec`,
`keys/tokens.lock`): not a regular file, not this user's, on a read-only file system, or no
descriptor left. The command fails with a StateError (exit 5) in one line naming the file,
what is wrong and what to do, never a traceback; tick reports such a run and goes on with the
others (tests/store/test_tick_unclaimable.py)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from conftest import Project

from wfrun.errors import StateError
from wfrun.store._statelock import StateLock
from wfrun.store.file import FileStore

GATE = "steps:\n  - {id: gate, wait: true}\n  - {id: after, handler: done}\n"
DONE = "def done(ctx):\n    return 1\n"


def _one_error_line(stderr: str) -> str:
    assert "Traceback" not in stderr, stderr
    [line] = stderr.strip().splitlines()
    assert line.startswith("error: "), line
    return line


@pytest.fixture
def gated(project: Project) -> Project:
    project.workflow("gate", GATE, DONE)
    assert project.run("start", "gate", "--run-id", "r1").code == 0
    return project


@pytest.mark.parametrize("name", ["r1.exec", "r1.lock"])
def test_a_lock_file_that_is_a_directory_fails_resume_and_cancel_with_exit_5(
        gated: Project, name: str) -> None:
    path = gated.state / "locks" / name
    path.unlink()
    path.mkdir()
    commands = [["resume", "r1", "--data", "{}"]]
    if name == "r1.lock":  # (cancelling a run that waits for data claims nothing)
        commands.append(["cancel", "r1"])
    for args in commands:
        out = gated.cli(*args)
        assert out.code == 5, (args, out)
        line = _one_error_line(out.stderr)
        assert f"cannot open {path} (" in line and "it is a directory" in line, line
        assert f"'rm -r {path}'" in line, line
    path.rmdir()  # as told: the commands work again
    assert gated.cli("resume", "r1", "--data", "{}").code == 0


def test_a_state_lock_that_is_a_symlink_is_refused_by_name(gated: Project) -> None:
    path = gated.state / "locks" / "r1.lock"
    path.unlink()
    path.symlink_to(gated.state / "locks" / "r1.exec")
    out = gated.cli("cancel", "r1")
    assert out.code == 5
    line = _one_error_line(out.stderr)
    assert f"{path} (the state lock of run r1)" in line and "a symbolic link" in line
    assert f"'rm {path}'" in line


def test_the_token_files_lock_that_cannot_be_opened_fails_token_create_with_exit_5(
        project: Project) -> None:
    project.workflow("gate", GATE, DONE)
    assert project.run("start", "gate", "--run-id", "r1").code == 0
    path = project.state / "keys" / "tokens.lock"
    path.mkdir()
    out = project.cli("token", "create", "--workflow", "gate")
    assert out.code == 5, out
    line = _one_error_line(out.stderr)
    assert f"cannot open {path} (the token file's lock)" in line and "rm -r" in line


@pytest.mark.parametrize("code", [errno.EACCES, errno.EPERM, errno.EROFS, errno.EMFILE])
def test_each_reason_says_what_to_do(tmp_path: Path, code: int,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """What cannot be set up as an ordinary user (another owner, an immutable file, a read-only
    mount) is made by the open itself failing that way; tests/reliability covers them for
    real where the tests run as root."""
    path = tmp_path / "r1.lock"
    path.touch()
    real_open = os.open

    def failing(file: str, *args: object, **kwargs: object) -> int:
        if file == str(path):
            raise OSError(code, os.strerror(code), file)
        return real_open(file, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", failing)
    with pytest.raises(StateError) as caught:
        StateLock(str(path), "the state lock of run r1").acquire(timeout=1)
    message = caught.value.message
    assert message.startswith(f"cannot open {path} (the state lock of run r1): "
                              f"{os.strerror(code)}; "), message
    wanted = {errno.EACCES: f"chmod 600 {path}", errno.EPERM: f"chattr -i {path}",
              errno.EROFS: "remount it read-write", errno.EMFILE: "ulimit -n"}[code]
    assert wanted in message and "\n" not in message


def test_a_claim_file_that_cannot_be_opened_is_a_state_error(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "state")
    store._ensure()
    path = tmp_path / "state" / "locks" / "r1.exec"
    path.mkdir()
    with pytest.raises(StateError, match=r"\(the execution claim of run r1\): Is a directory"):
        store.claim("r1")
    with pytest.raises(StateError, match="the execution claim of run r1"):
        store.is_claimed("r1")


def test_a_state_subdirectory_that_cannot_be_read_is_one_sentence_not_a_traceback(
        gated: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    """`chmod 000 runs` (run as its owner; root reads it anyway, so the refusal is made here):
    list and doctor say which directory and what to do (exit 5)."""
    runs = str(gated.state / "runs")
    listdir = os.listdir

    def refusing(path: str | os.PathLike[str] = ".") -> list[str]:
        if os.fspath(path) == runs:
            raise PermissionError(errno.EACCES, "Permission denied", runs)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", refusing)
    for args in (["list", "--all"], ["doctor"]):
        out = gated.run(*args)
        assert out.code == 5, (args, out)
        line = _one_error_line(out.stderr)
        assert f"cannot read directory {runs}: Permission denied" in line
        assert f"chmod 700 {runs}" in line
