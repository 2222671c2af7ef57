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
    """Run a command under bash, so that the shell wfrun detects is bash."""
    env = {**os.environ, "HOME": str(home), "SHELL": "/bin/bash",
           "PATH": f"{Path(WFRUN).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=60,
                          env=env)


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_show_and_install_completion_for_bash(tmp_path: Path) -> None:
    shown = bash("wfrun --show-completion", tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "_WFRUN_COMPLETE=complete_bash" in shown.stdout
    assert "complete -o default -F _wfrun_completion wfrun" in shown.stdout
    installed = bash("wfrun --install-completion", tmp_path)
    assert installed.returncode == 0, installed.stderr
    script = tmp_path / ".bash_completions" / "wfrun.sh"
    assert script.read_text().strip() == shown.stdout.strip()
    assert f"source '{script}'" in (tmp_path / ".bashrc").read_text()


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
