"""`wfrun fork` of a run with a settled `workflow:` step, then `wfrun prune` of the source: the
fork copies the step's result, not its child run, so the child run goes with its parent (the
source) and nothing the kept fork's document names is deleted."""

from __future__ import annotations

import time
from typing import Any

from conftest import Project


def _workflows(project: Project) -> None:
    project.workflow("inner", """\
        name: inner
        steps:
          - id: ok
            wait: true
        """)
    project.workflow("outer", """\
        name: outer
        steps:
          - id: items
          - id: sub
            workflow: inner
          - id: each
            foreach: items
            workflow: inner
          - id: gate
            wait: true
        """, """\
        def items(ctx):
            return [1]
        """)


def _named_runs(doc: dict[str, Any]) -> set[str]:
    """The runs a run document names: its steps' and iterations' child runs."""
    named = set()
    for step in doc["steps"].values():
        if step.get("child_run_id"):
            named.add(step["child_run_id"])
        for it in step.get("iterations") or []:
            if it.get("child_run_id"):
                named.add(it["child_run_id"])
    return named


def test_prune_of_a_forked_source_deletes_no_run_the_fork_names(project: Project) -> None:
    _workflows(project)
    project.json("start", "outer", "--run-id", "qa")
    assert project.run("resume", "qa", "--step", "sub/ok", "--data", "1").code == 0
    assert project.run("resume", "qa", "--step", "each[0]/ok", "--data", "2").code == 0
    source = project.json("show", "qa")
    children = _named_runs(source)
    assert len(children) == 2
    assert [p["step"] for p in source["suspended"]] == ["gate"]
    fork = project.json("fork", "qa", "--from", "gate", "--run-id", "qb")
    assert [p["step"] for p in fork["suspended"]] == ["gate"]
    for sid in ("sub", "each"):  # the result is copied...
        assert fork["steps"][sid]["status"] == "completed"
        assert fork["steps"][sid]["output"] == source["steps"][sid]["output"]
    assert _named_runs(fork) == set()  # ...not the source's child runs
    assert project.json("resume", "qa", "--step", "gate", "--data", "3")["status"] == "completed"
    time.sleep(1.1)
    report = project.json("prune", "--older-than", "1s")
    assert {r["run_id"] for r in report["runs"]} == {"qa", *children}
    store = project.store()
    kept = project.json("show", "qb")
    assert all(store.exists(named) for named in _named_runs(kept))
    assert kept["steps"]["sub"]["output"] == source["steps"]["sub"]["output"]
    assert project.json("resume", "qb", "--data", "4")["status"] == "completed"
    assert project.run("doctor").code == 0
