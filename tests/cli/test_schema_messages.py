"""Issue 17.3, SPEC §7: messages about schemas are sentences for people (CLI exit 2 and HTTP
422), while SchemaViolation.errors keeps each field's JSON path for --json consumers."""

from __future__ import annotations

import pytest
from conftest import Project

from wfrun import _schema
from wfrun.errors import SchemaViolation

APPROVAL = """
    name: approval
    input_schema:
      type: object
      required: [user, amount]
      properties: {user: {type: string}, amount: {type: number, minimum: 0}}
    steps:
      - id: approve
        wait: true
        resume_schema:
          type: object
          required: [approved]
          properties:
            approved: {type: boolean}
            level: {enum: [low, high]}
            note: {type: string, maxLength: 5}
"""
SCHEMA = {
    "type": "object", "required": ["approved"], "additionalProperties": False,
    "properties": {"approved": {"type": "boolean"}, "level": {"enum": ["low", "high"]},
                   "address": {"type": "object", "required": ["city"],
                               "properties": {"city": {"type": "string"}}}},
}


def _violation(schema: object, data: object, what: str = "resume data for step 's'") -> SchemaViolation:
    with pytest.raises(SchemaViolation) as caught:
        _schema.validate(schema, data, what)
    return caught.value


def test_no_data_says_what_the_step_needs() -> None:
    exc = _violation(SCHEMA, None)
    assert exc.message == ("resume data for step 's' is missing: this step needs data with "
                           '"approved" (true or false)')
    assert "None" not in exc.message and "$" not in exc.message
    assert exc.errors == [{"path": "$", "message": 'this step needs data with "approved" (true or false)'}]


@pytest.mark.parametrize(("data", "sentence", "path"), [
    ({}, '"approved" (true or false) is missing', "$.approved"),
    ({"approved": "yes"}, '"approved" must be true or false, not "yes"', "$.approved"),
    ({"approved": True, "level": "mid"}, '"level" must be one of "low", "high", not "mid"',
     "$.level"),
    ({"approved": True, "address": {}}, '"address.city" (text) is missing', "$.address.city"),
    ({"approved": True, "extra": 1}, '"extra" is not expected', "$"),
    ("yes", 'this step needs data with "approved" (true or false), not "yes"', "$"),
])
def test_each_problem_is_a_sentence_naming_the_field(data: object, sentence: str, path: str) -> None:
    exc = _violation(SCHEMA, data)
    assert exc.message.startswith("resume data for step 's' is not valid: ")
    assert sentence in exc.message
    assert "is not of type" not in exc.message and "required property" not in exc.message
    assert path in [e["path"] for e in exc.errors]


def test_a_scalar_schema_names_the_data_and_the_input_names_the_workflow() -> None:
    exc = _violation({"type": "integer", "minimum": 0}, -1, "answer to ask #2 of step 'x'")
    assert exc.message == "answer to ask #2 of step 'x' is not valid: the data must be at least 0, not -1"
    exc = _violation({"type": "object", "required": ["user"]}, None, "input of workflow 'w'")
    assert exc.message == ("input of workflow 'w' is missing: this workflow needs input with "
                           '"user" (any value)')


def test_the_cli_says_it_in_a_sentence_with_exit_2(project: Project) -> None:
    project.workflow("approval", APPROVAL, "")
    out = project.run("start", "approval", "--input", '{"user": "ann", "amount": -3}')
    assert out.code == 2
    assert out.stderr.strip() == ("error: input of workflow 'approval' is not valid: \"amount\" "
                                  "must be at least 0, not -3")
    run_id = project.json("start", "approval", "--input", '{"user": "ann", "amount": 3}')["run_id"]
    before = project.snapshots()
    out = project.run("resume", run_id)
    assert out.code == 2
    assert ("resume data for step 'approve' is missing: this step needs data with \"approved\" "
            "(true or false)") in out.stderr
    out = project.run("resume", run_id, "--data", '{"approved": true, "note": "too long"}')
    assert out.code == 2 and '"note" must be at most 5 characters long' in out.stderr
    assert project.snapshots() == before
