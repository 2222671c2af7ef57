"""tick on the file store when a due run's claim file cannot be opened (not a regular file, not
this user's, a read-only file system): that run is reported, once a tick, and every other due
run is still advanced (SPEC §5: exit 1, each run listed on stderr). Out of descriptors, a tick
claims fewer runs at a time rather than fail them (test_tick_descriptors.py)."""

from __future__ import annotations

import json

import pytest
from conftest import END_OF_TIME, Project

NAP = "steps:\n  - {id: nap, sleep: 1h}\n  - {id: after, handler: done}\n"
DONE = "def done(ctx):\n    return 1\n"


def _napping(project: Project, count: int) -> list[str]:
    project.workflow("nap", NAP, DONE)
    ids = [f"s{i}" for i in range(1, count + 1)]
    for run_id in ids:
        assert project.run("start", "nap", "--run-id", run_id).code == 0
    return ids


def _statuses(project: Project) -> dict[str, str]:
    return {run["run_id"]: run["status"]
            for run in project.json("list", "--limit", "1000")}


@pytest.mark.parametrize("workers", ["1", "2"])
def test_a_run_whose_claim_file_cannot_be_opened_stops_no_other_run(
        project: Project, workers: str) -> None:
    ids = _napping(project, 40)  # more than a batch (32): the bad run is due in each batch
    bad = project.state / "locks" / "s2.exec"
    bad.unlink()
    bad.mkdir()
    out = project.cli("tick", "--now", END_OF_TIME, "--workers", workers)
    assert out.code == 1, out
    assert "Traceback" not in out.stderr
    said = [line for line in out.stderr.splitlines() if str(bad) in line]
    assert len(said) == 1, out.stderr  # once, however many batches found it due
    assert "s2" in said[0] and "it is a directory" in said[0] and f"rm -r {bad}" in said[0]
    statuses = _statuses(project)
    assert statuses.pop("s2") == "waiting"
    assert set(statuses) == set(ids) - {"s2"} and set(statuses.values()) == {"completed"}
    bad.rmdir()  # as told: the next tick advances it
    again = project.cli("tick", "--now", END_OF_TIME, "--workers", workers)
    assert again.code == 0, again
    assert _statuses(project)["s2"] == "completed"


def test_json_report_lists_the_run(project: Project) -> None:
    _napping(project, 3)
    bad = project.state / "locks" / "s1.exec"
    bad.unlink()
    bad.symlink_to(project.state / "locks")  # a directory through a symbolic link
    out = project.cli("tick", "--now", END_OF_TIME, "--json")
    assert out.code == 1, out
    report = json.loads(out.stdout)
    [error] = report["errors"]
    assert error["run_id"] == "s1" and str(bad) in error["message"]
    assert sorted(item["run_id"] for item in report["advanced"]) == ["s2", "s3"]
