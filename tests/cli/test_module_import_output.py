"""What a step module prints at import time goes to stderr: with `--json`, stdout holds the
command's document and nothing else (SPEC §5), whichever command imports the module."""

from __future__ import annotations

import json

from conftest import Outcome, Project

MANIFEST = """\
steps:
  - id: ask
    wait: true
  - id: first
  - id: nap
    sleep: 1m
  - id: done
"""
MODULE = """\
import sys

print("loading the module")
print("a warning at import", file=sys.stderr)


def first(ctx):
    return 1


def done(ctx):
    print("inside the step")
    return {"ok": True}
"""


def _document(out: Outcome) -> dict[str, object] | list[object]:
    assert out.code == 0, (out.code, out.stdout, out.stderr)
    assert "loading the module" in out.stderr and "a warning at import" in out.stderr
    document: dict[str, object] | list[object] = json.loads(out.stdout)  # one document, alone
    return document


def test_a_module_printing_at_import_leaves_json_on_stdout_alone(project: Project) -> None:
    project.workflow("noisy", MANIFEST, MODULE)
    started = _document(project.cli("start", "noisy", "--run-id", "n1", "--json"))
    assert isinstance(started, dict) and started["status"] == "suspended"
    resumed = _document(project.cli("resume", "n1", "--data", "{}", "--json"))
    assert isinstance(resumed, dict) and resumed["status"] == "waiting"
    ticked = _document(project.cli("tick", "--now", "2099-01-01T00:00:00Z", "--json"))
    assert isinstance(ticked, dict)
    assert [(a["run_id"], a["status"]) for a in ticked["advanced"]] == [("n1", "completed")]
    validated = _document(project.cli("validate", "noisy", "--json"))
    assert isinstance(validated, list) and len(validated) == 1
    # a print inside a step is the step's output, kept for `wfrun logs`, as before
    logs = project.cli("logs", "n1")
    assert logs.code == 0 and "inside the step" in logs.stdout
    assert "loading the module" not in logs.stdout
