"""A state directory that exists but is empty (systemd's `StateDirectory=`, a fresh Docker
volume, `mkdir -m 700 .wfstate`) is a state directory with no runs: every command works on it
(issue 18, point 3)."""

from __future__ import annotations

import pytest
from conftest import Project

FLOW = """
name: flow
steps:
  - id: a
"""


@pytest.fixture
def empty(project: Project) -> Project:
    project.workflow("flow", FLOW, "def a(ctx):\n    return 1\n")
    project.state.mkdir(mode=0o700)
    return project


@pytest.mark.parametrize("args, stdout", [
    (["list"], None), (["list", "--json"], "[]"), (["pending"], None),
    (["pending", "--json"], "[]"), (["prune", "--older-than", "1d"], None),
    (["tick"], ""), (["tick", "--now", "2030-01-01T00:00:00Z", "--json"], None),
    (["doctor"], None),
])
def test_reading_commands_on_an_empty_state_dir(empty: Project, args: list[str],
                                                stdout: str | None) -> None:
    out = empty.cli(*args)
    assert out.code == 0, out
    assert out.stderr == "", out.stderr
    if stdout is not None:
        assert out.stdout.strip() == stdout
    assert list(empty.state.iterdir()) == [], "a reading command created files"


def test_json_answers_on_an_empty_state_dir(empty: Project) -> None:
    assert empty.json("tick")["advanced"] == []
    assert empty.json("doctor")["runs"] == 0
    assert empty.json("prune", "--older-than", "1d", "--dry-run")["runs"] == []
    assert empty.run("show", "nope").code == 4


def test_the_first_run_goes_into_an_empty_state_dir(empty: Project) -> None:
    assert empty.run("start", "flow", "--run-id", "r1").code == 0
    assert [row["run_id"] for row in empty.json("list")] == ["r1"]
    assert (empty.state / "runs" / "r1.json").is_file()
