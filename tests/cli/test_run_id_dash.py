"""Run ids may not start with '-': every command wfrun prints names the run as an argument."""

from __future__ import annotations

import shlex

import pytest
from conftest import Project

from wfrun.errors import UsageError
from wfrun.ids import check_run_id

GATE = "steps: [{id: gate, wait: true}]\n"


@pytest.mark.parametrize("args", [
    ["start", "w", "--run-id", "-x"],
    ["start", "w", "--run-id=-x"],
    ["start", "w", "--run-id", "--"],
    ["start", "w", "--run-id=-", "--json"],
])
def test_start_refuses_a_run_id_starting_with_a_dash(project: Project, args: list[str]) -> None:
    project.workflow("w", GATE)
    out = project.run(*args)
    assert out.code == 2, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and out.stdout == ""
    assert "invalid run id" in out.stderr and "not starting with '-'" in out.stderr
    assert not project.state.exists()  # refused before touching the disk


def test_fork_refuses_a_new_run_id_starting_with_a_dash(project: Project) -> None:
    project.workflow("w", GATE)
    run_id = project.json("start", "w")["run_id"]
    before = project.snapshots()
    out = project.run("fork", run_id, "--from", "gate", "--run-id=-copy")
    assert out.code == 2 and "not starting with '-'" in out.stderr, (out.stdout, out.stderr)
    assert project.snapshots() == before


def test_ids_with_a_dash_inside_still_work_and_print_usable_commands(project: Project) -> None:
    project.workflow("w", GATE)
    doc = project.json("start", "w", "--run-id", "a-b-")
    assert doc["run_id"] == "a-b-"
    command = shlex.split(doc["suspended"][0]["resume_command"])
    at = command.index("resume")
    assert command[at + 1] == "a-b-"
    out = project.run(*command[at:])  # the printed command works as printed
    assert out.code == 0, (out.stdout, out.stderr)


@pytest.mark.parametrize("good", ["x", "_x", "0", "a" * 64, "a-", "A_b-9"])
def test_check_run_id_accepts(good: str) -> None:
    assert check_run_id(good) == good


@pytest.mark.parametrize("bad", ["-", "-x", "--", "-" * 64, "", "a" * 65, "a b"])
def test_check_run_id_refuses(bad: str) -> None:
    with pytest.raises(UsageError):
        check_run_id(bad)
