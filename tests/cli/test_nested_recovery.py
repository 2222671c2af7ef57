"""A resume by path killed at every file operation: the child and its parent never disagree
for good; the next tick (or a repeated resume) brings both to the end."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import END_OF_TIME, Project

from .test_nested import setup

MAX_OPS = 80  # more file operations than the resume makes (checked below)
STRIDE = 3


@pytest.mark.slow  # a long trial: CI runs it with -m slow
def test_resume_by_path_killed_at_every_operation_is_finished_by_tick(tmp_path: Path) -> None:
    (tmp_path / "template").mkdir()
    template = Project(tmp_path / "template")
    setup(template)
    template.json("start", "parent", "--run-id", "p1")
    # an hour later: after the resume (so an unacknowledged child is due), before deadlines
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    resume = ("resume", "p1", "--step", "review/approve", "--data", '{"ok": true}')
    crashed: list[tuple[int, Project]] = []
    for n in range(1, MAX_OPS + 1, STRIDE):  # every STRIDE-th operation, to keep it quick
        (tmp_path / f"kill{n}").mkdir()
        copy = Project(tmp_path / f"kill{n}")
        shutil.copytree(template.workflows, copy.workflows, dirs_exist_ok=True)
        shutil.copytree(template.state, copy.state)
        out = copy.cli(*resume, env={"WFRUN_FAULT": f"kill@{n}"})
        if out.code == 0:
            break
        assert out.code == 137, (n, out.stderr)
        crashed.append((n, copy))
    else:
        raise AssertionError("MAX_OPS is too small for this command")
    assert len(crashed) >= 5
    for n, project in crashed:
        project.run("tick", "--now", later)
        parent, child = project.json("show", "p1"), project.json("show", "p1--review")
        if parent["status"] == "suspended":  # the resume was lost before it was accepted
            assert child["status"] == "suspended", n
            project.json(*resume)
            parent, child = project.json("show", "p1"), project.json("show", "p1--review")
        assert (parent["status"], child["status"]) == ("completed", "completed"), n
        assert parent["output"] == {"review": {"doc": "a.pdf", "ok": True}}, n
        assert child["steps"]["approve"]["resume_data"] == {"ok": True}, n
        # nothing left for tick, even long after (a stale index entry is only dropped)
        far = json.loads(project.run("tick", "--now", "2031-01-01T00:00:00Z", "--json").stdout)
        assert far == {"advanced": [], "errors": []}, n
        assert project.store().due(END_OF_TIME) == [], n


@pytest.mark.slow  # a long trial: CI runs it with -m slow
def test_start_killed_at_every_operation_never_starts_a_second_child(tmp_path: Path) -> None:
    later = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    crashed = 0
    for n in range(1, MAX_OPS + 1, STRIDE):
        (tmp_path / f"kill{n}").mkdir()
        project = Project(tmp_path / f"kill{n}")
        setup(project)
        out = project.cli("start", "parent", "--run-id", "p1", env={"WFRUN_FAULT": f"kill@{n}"})
        if out.code == 0:
            break
        assert out.code == 137, (n, out.stderr)
        crashed += 1
        project.run("tick", "--now", later)
        project.json("start", "parent", "--run-id", "p1")  # idempotent: creates it if lost
        project.run("tick", "--now", later)
        doc = project.json("show", "p1")
        assert doc["status"] == "suspended", n
        assert [e["step"] for e in doc["suspended"]] == ["review/approve"], n
        assert sorted(r["run_id"] for r in project.json("list", "--children")) == ["p1", "p1--review"], n
        done = project.json("resume", "p1", "--step", "review/approve", "--data", '{"ok": true}')
        assert done["output"] == {"review": {"doc": "a.pdf", "ok": True}}, n
    else:
        raise AssertionError("MAX_OPS is too small for this command")
    assert crashed >= 5
