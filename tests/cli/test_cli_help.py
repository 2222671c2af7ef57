"""Every command's --help shows an example, and shell completion works."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from wfrun.cli import app

COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]
WFRUN = str(Path(sys.executable).parent / "wfrun")  # the console script (completion needs its name)


def test_the_commands_of_this_release_are_all_there() -> None:
    assert {"start", "resume", "cancel", "tick", "list", "show", "pending", "validate",
            "workflows", "doctor", "logs", "init"} <= set(COMMANDS)


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_shows_an_example(command: str) -> None:
    result = CliRunner().invoke(app, [*command.split(), "--help"], terminal_width=200)
    assert result.exit_code == 0
    examples = [line.strip() for line in result.stdout.splitlines() if "Example:" in line]
    assert examples, f"'wfrun {command} --help' has no Example: line"
    words = examples[0].split()
    assert words[:2] == ["Example:", "wfrun"], examples
    assert not command or command in words, examples


def bash(command: str, home: Path) -> subprocess.CompletedProcess[str]:
    """Run a command under bash (the shell is named on the command line: detecting it needs a
    shell among the parent processes, which cron, setsid or a container may not have)."""
    env = {**os.environ, "HOME": str(home), "SHELL": "/bin/bash",
           "PATH": f"{Path(WFRUN).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_and_install_completion_for_bash(tmp_path: Path) -> None:
    shown = bash("wfrun --show-completion bash", tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "_WFRUN_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _wfrun_completion wfrun" in shown.stdout
    installed = bash("wfrun --install-completion bash", tmp_path)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "wfrun.sh"
    assert script.read_text().strip() == shown.stdout.strip()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


def test_completion_for_a_named_shell_needs_no_shell_around(tmp_path: Path) -> None:
    detached = subprocess.run(  # a new session, as under cron: no terminal, no shell asked
        [WFRUN, "--show-completion", "zsh"], capture_output=True, text=True, timeout=60,
        start_new_session=True, env={**os.environ, "HOME": str(tmp_path)})
    assert detached.returncode == 0, detached.stderr
    assert detached.stdout.startswith("#compdef wfrun")


def test_completion_set_up_says_which_shell_to_name_when_none_is_found(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from wfrun.cli import _complete

    monkeypatch.setattr(_complete, "_detect_shell", lambda: None)  # no shell among the parents
    monkeypatch.setenv("HOME", str(tmp_path))
    for option in ("--show-completion", "--install-completion"):
        result = CliRunner().invoke(app, [option])
        assert result.exit_code == 2
        assert result.stderr == (
            "error: cannot tell which shell runs wfrun (no shell among its parent processes, "
            f"as under cron or setsid); name it: wfrun {option} bash (or zsh, fish, "
            "powershell)\n")
    assert list(tmp_path.iterdir()) == []  # nothing was installed
    unknown = CliRunner().invoke(app, ["--install-completion", "tcsh"])
    assert unknown.exit_code == 2
    assert "wfrun has no completion for the shell 'tcsh'; name one of bash, zsh, fish, " \
        "powershell: wfrun --install-completion bash" in unknown.stderr


@pytest.mark.parametrize(("words", "cword", "expected"), [
    ("wfrun lo", "1", "logs"),
    ("wfrun logs RUN --fo", "3", "--follow"),
    ("wfrun init x --templ", "3", "--template"),
])
def test_completion_completes_commands_and_options(words: str, cword: str, expected: str) -> None:
    env = {**os.environ, "_WFRUN_COMPLETE": "complete_bash", "COMP_WORDS": words,
           "COMP_CWORD": cword}
    proc = subprocess.run([WFRUN], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [expected]
