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


SHELL_MODULE = """\
import os

os.system("echo from a shell at import")  # straight to descriptor 1, past sys.stdout


def first(ctx):
    return 1
"""


def test_what_a_module_writes_to_descriptor_1_at_import_goes_to_stderr(project: Project) -> None:
    """`validate` and `token create` import the step module: a subprocess it starts at import
    writes to descriptor 1 itself, which is stderr's while they do."""
    project.workflow("shell", "steps:\n  - id: first\n", SHELL_MODULE)
    for args in (["validate", "--json"], ["validate", "shell", "--json"],
                 ["token", "create", "--workflow", "shell", "--json"]):
        out = project.cli(*args)
        assert out.code == 0, (args, out.stdout, out.stderr)
        assert "from a shell at import" in out.stderr, args
        json.loads(out.stdout)  # one document, alone
    human = project.cli("validate", "shell")
    assert human.code == 0 and human.stdout.startswith("ok      shell (1 step)")
    assert "from a shell at import" in human.stderr
