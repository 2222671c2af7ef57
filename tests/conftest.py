"""Shared fixtures: a project directory with workflows, and ways to run the CLI against it."""

from __future__ import annotations

import compileall
import json
import os
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import typer.testing
from hypothesis import settings
from typer import Typer
from typer.testing import CliRunner

from wfrun.cli import app
from wfrun.store import Store, open_store

REPO = Path(__file__).resolve().parent.parent
# later than any due time: `store.due(END_OF_TIME)` is every run a tick would ever visit
END_OF_TIME = "9999-12-31T23:59:59.999Z"

# CI explores the same fuzz examples every run (a failure there is reproducible, and a change
# does not fail on an example an unrelated later run happened to draw); locally each run
# explores new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

# typer's CliRunner builds the click command tree from the app on every invoke (25-50 ms here,
# more than most commands take once built: about a fifth of the suite's CPU time). The whole
# command line's tree is built once and reused, as long as its commands are the same; click
# makes a new context for every invocation, so nothing of one run is kept for the next. Any
# other app (`app_for`'s one-command copies) is built on each call as before.
_build_command = typer.testing._get_command
_built: dict[str, Any] = {}  # "key": the app's commands when it was built, "command": the tree


def _command(typer_app: Typer) -> Any:
    """`typer.testing`'s command for an app: the full app's tree built once per set of commands."""
    if typer_app is not app:
        return _build_command(typer_app)
    key = (tuple(map(id, typer_app.registered_commands)), tuple(map(id, typer_app.registered_groups)),
           typer_app.registered_callback)
    if _built.get("key") != key:
        _built.update(key=key, command=_build_command(typer_app))
    return _built["command"]


typer.testing._get_command = _command


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """Workers for `-n auto` (pyproject's addopts): half as many again as the CPUs this process
    may use (3 on 2). A worker spends much of its time off the CPU (servers, PostgreSQL, child
    processes starting, fsync), and the extra worker uses it: on 2 CPUs the suite took 200 s
    with 2 workers and 171-183 s with 3. PYTEST_XDIST_AUTO_NUM_WORKERS still decides if set."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # no sched_getaffinity (macOS)
        cpus = os.cpu_count() or 1
    return cpus + (cpus + 1) // 2



def pytest_configure(config: pytest.Config) -> None:
    """Compile wfrun's bytecode once, before any worker starts. The suite starts about a
    thousand `wfrun` processes; an editable checkout has no bytecode until an import writes
    it, and under PYTHONDONTWRITEBYTECODE=1 (set on some CI machines) none ever is, so each of
    them would compile every module it imports from source (tests/cli took 83 s instead of
    67 s here). compileall writes the files whatever that variable says, as pip does for an
    installed package."""
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        compileall.compile_dir(str(REPO / "wfrun"), quiet=1)

def file_store(state: Path) -> Store:
    """The file store over a state directory, as `--state-dir` opens it: what a behaviour test
    reads a run's state, history and logs through (never the store's files)."""
    return open_store(f"file:{state}")


@dataclass
class Outcome:
    """What one CLI invocation produced."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)


class Project:
    """A temporary project: `workflows/` and `.wfstate/` under one directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.workflows = root / "workflows"
        self.state = root / ".wfstate"
        self.workflows.mkdir(exist_ok=True)

    def workflow(self, name: str, manifest: str, module: str | None = None) -> Path:
        """Write `workflows/NAME.yaml` (and `NAME.py` if given), dedented."""
        path = self.workflows / f"{name}.yaml"
        path.write_text(textwrap.dedent(manifest))
        if module is not None:
            (self.workflows / f"{name}.py").write_text(textwrap.dedent(module))
        return path

    def base_args(self) -> list[str]:
        return ["--state-dir", str(self.state), "--workflows-dir", str(self.workflows)]

    def run(self, *args: str, input: str | None = None) -> Outcome:
        """Invoke the CLI in-process (typer's CliRunner), like a user would from a shell."""
        runner = CliRunner()
        result = runner.invoke(app, [*self.base_args(), *args], input=input)
        if result.exception and not isinstance(result.exception, SystemExit):
            raise result.exception
        return Outcome(result.exit_code, result.stdout, result.stderr)

    def cli(self, *args: str, input: str | None = None, env: dict[str, str] | None = None,
            timeout: float = 60) -> Outcome:
        """Invoke `python -m wfrun` as a real process."""
        proc = subprocess.run(
            [sys.executable, "-m", "wfrun", *self.base_args(), *args],
            input=input, capture_output=True, text=True, timeout=timeout,
            env={**os.environ, **(env or {})}, cwd=self.root,
        )
        return Outcome(proc.returncode, proc.stdout, proc.stderr)

    def json(self, *args: str, input: str | None = None) -> Any:
        """Run a command with --json, assert it exited 0, and return the parsed document."""
        out = self.run(*args, "--json", input=input)
        assert out.code == 0, (out.code, out.stdout, out.stderr)
        return out.json()

    def store(self) -> Store:
        """The store the CLI keeps this project's runs in (`file_store` of `.wfstate/`)."""
        return file_store(self.state)

    def snapshots(self) -> dict[str, bytes]:
        """Every file under the state directory, by relative path (to prove nothing changed)."""
        if not self.state.exists():
            return {}
        return {
            str(p.relative_to(self.state)): p.read_bytes()
            for p in sorted(self.state.rglob("*")) if p.is_file()
        }


@pytest.fixture
def project(tmp_path: Path) -> Project:
    """An empty project in a temporary directory."""
    return Project(tmp_path)
