"""A manifest error shows the offending value as YAML writes it (`null`, `true`, `["a"]`), not
as Python's repr (`None`, `True`, `['a']`): the reader wrote YAML, not Python."""

from __future__ import annotations

import pytest
from conftest import Project

STEP = "steps:\n  - id: a\n"
WAIT = "steps:\n  - id: a\n    wait: true\n"


@pytest.mark.parametrize(("manifest", "words"), [
    ("schedule: {every: 1h, overlap: null}\n" + STEP,
     "key 'schedule': overlap: must be one of skip, allow, cancel_previous (got null)"),
    ("schedule: {every: 1h, catchup: [a]}\n" + STEP,
     "catchup: must be one of latest, all, none (got [\"a\"])"),
    ("schedule: {every: 1h, overlap: 2026-01-01}\n" + STEP, "(got 2026-01-01)"),
    ("schedule: {every: 1h, overlap: \"it's\"}\n" + STEP, "(got \"it's\")"),  # a string: quoted
    ("schedule: {cron: null}\n" + STEP, "cron: null is not a cron expression of 5 fields"),
    ("schedule: {every: null}\n" + STEP, "every: null is not a duration"),
    ("schedule: {every: 1h, null: x}\n" + STEP, "unknown key null (known: cron, every"),
    ("steps:\n  - id: null\n", "needs an id of letters, digits, '-' or '_' (got null)"),
    (WAIT + "    on_timeout: true\n", "must be one of cancel, resume, fail (got true)"),
    (WAIT + "    timeout: null\n", "key 'timeout': null is not a duration"),
    ("name: null\n" + STEP, "key 'name': null is not a valid name"),
    (STEP + "    handler: [x]\n", "key 'handler': [\"x\"] is not a Python function name"),
    (STEP + "    label: false\n", "key 'label': false is not a valid label"),
    (STEP + "    workflow: true\n", "must name a workflow ([a-z0-9][a-z0-9_-]*), not true"),
    (STEP + "    retry: {delay: [1]}\n", "key 'retry': [1] is not a duration"),
    (STEP + "    retry: {null: 1}\n", "key 'retry': unknown key null"),
    (STEP + "    when: {null: 5}\n", "actions for null must be"),
    (WAIT + "    approvals: {required: null, approvers: [a, b]}\n",
     "(the number of approvers), not null"),
    (WAIT + "    approvals: {approvers: [null, b]}\n", "the approver null is not a name"),
    (WAIT + "    approvals: {approvers: [a], null: 1}\n", "has the unknown key null"),
    # a value of the wrong kind is named in YAML's words, with the right article
    ("output: 3\n" + STEP, "key 'output': must name a step (a string), not an integer"),
    ("steps: [3]\n", "key 'steps': step #1 must be a mapping, not an integer"),
    ("steps: [[a]]\n", "step #1 must be a mapping, not a list"),
    ("- a\n", "the manifest must be a YAML mapping, not a list"),
    (STEP + "    sleep_until: {at: 2030-01-01}\n", "such as 2030-01-01T09:00:00Z, not a mapping"),
])
def test_a_manifest_error_shows_the_value_as_yaml_has_it(project: Project, manifest: str,
                                                         words: str) -> None:
    path = project.workflow("bad", manifest, "def a(ctx):\n    return 1\n")
    out = project.run("validate", "bad")
    assert out.code == 2 and "Traceback" not in out.stderr, out
    assert out.stderr.startswith(f"error: {path}: ") and words in out.stderr, out.stderr
    for python in ("None", "True", "False", "['", "datetime", " a int"):
        assert python not in out.stderr, out.stderr


def test_shown_values() -> None:
    import datetime

    from wfrun._manifest_checker import shown

    assert [shown(v) for v in (None, True, 3, 0.5, "x", ["a", None], {"k": False})] == [
        "null", "true", "3", "0.5", "'x'", '["a", null]', '{"k": false}']
    assert shown(datetime.date(2026, 1, 2)) == "2026-01-02"
    assert shown([datetime.date(2026, 1, 2)]) == '["2026-01-02"]'
