"""The resume command wfrun suggests (start's output, `pending`, the run document's
`resume_command`) carries data that its step's `resume_schema` accepts: built from the
schema's `const`, `examples`, `default`, `enum`, bounds, lengths, formats and required
properties, checked with the validator resumes are checked with, and `{}` where no valid value
is found (a `pattern` with no example, a `oneOf` it cannot satisfy) rather than data the
schema would refuse."""

from __future__ import annotations

import json
import shlex
from typing import Any

import pytest
from conftest import Project
from hypothesis import given, settings
from hypothesis import strategies as st

from wfrun import _schema

# schema: the data suggested ({} where no valid value is found)
SCHEMAS: list[tuple[dict[str, Any], Any]] = [
    ({"type": "integer", "minimum": 5}, 5),
    ({"type": "integer", "exclusiveMinimum": 5, "multipleOf": 3}, 6),
    ({"type": "integer", "maximum": -3}, -3),
    ({"type": "integer", "exclusiveMaximum": -3}, -4),
    ({"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1}, 0.5),
    ({"type": "number", "minimum": 0.5, "multipleOf": 0.25}, 0.5),
    ({"type": "integer", "minimum": 10, "maximum": 20, "multipleOf": 7}, 14),
    ({"type": "string", "minLength": 5}, "....."),
    ({"type": "string", "maxLength": 2}, ".."),
    ({"type": "string", "format": "date-time"}, "2026-12-03T09:00:00Z"),
    ({"type": "string", "format": "email"}, "someone@example.com"),
    ({"type": "string", "pattern": "^[A-Z]{3}$", "examples": ["eur", "EUR"]}, "EUR"),
    ({"type": "string", "enum": ["low", "high"], "default": "high"}, "high"),
    ({"enum": ["low", "high"]}, "low"),
    ({"const": "go"}, "go"),
    ({"type": "integer", "default": 2, "minimum": 5}, 5),  # a default that fails is not used
    ({"type": ["null", "integer"], "minimum": 3}, None),
    ({"type": "array", "minItems": 2, "items": {"type": "integer", "minimum": 3}}, [3, 3]),
    ({"type": "array", "prefixItems": [{"type": "string"}, {"type": "integer", "minimum": 9}],
      "minItems": 2}, ["...", 9]),
    ({"type": "array", "contains": {"type": "integer", "minimum": 5}}, [5]),
    ({"type": "object", "required": ["approved"],
      "properties": {"approved": {"type": "boolean"}, "reviewer": {"type": "string"}}},
     {"approved": True}),
    ({"type": "object", "properties": {"comment": {"type": "string"}}}, {"comment": "..."}),
    ({"type": "object", "required": ["a"], "properties": {"a": {
        "type": "object", "required": ["b", "when"],
        "properties": {"b": {"type": "integer", "minimum": 10},
                       "when": {"type": "string", "format": "date"}}}}},
     {"a": {"b": 10, "when": "2026-12-03"}}),
    ({"type": "object", "required": ["a"], "dependentRequired": {"a": ["b"]},
      "properties": {"a": {"type": "string"}, "b": {"type": "integer", "minimum": 4}}},
     {"a": "...", "b": 4}),
    ({"$defs": {"n": {"type": "integer", "minimum": 7}}, "type": "object", "required": ["n"],
      "properties": {"n": {"$ref": "#/$defs/n"}}}, {"n": 7}),
    ({"allOf": [{"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}},
                {"required": ["n"], "properties": {"n": {"type": "integer", "minimum": 1}}}]},
     {"ok": True, "n": 1}),
    ({"anyOf": [{"type": "string", "pattern": "x+"}, {"type": "integer", "minimum": 2}]}, 2),
    ({"not": {"type": "object"}}, "..."),
]
# no valid value found: the placeholder {}, which a resume is refused with in words
NO_EXAMPLE: list[dict[str, Any]] = [
    {"type": "string", "pattern": "^[A-Z]{3}$"},
    {"oneOf": [{"type": "integer"}, {"type": "number", "minimum": 0}]},
    {"type": "object", "required": ["x"], "additionalProperties": False},
    {"type": "integer", "minimum": 1, "maximum": 1, "multipleOf": 2},
    {"type": "array", "minItems": 2, "uniqueItems": True, "items": {"type": "integer"}},
]


def _data_of(command: str) -> tuple[list[str], Any]:
    """The arguments after `wfrun [global options]` of a suggested command, and its --data."""
    words = shlex.split(command)
    args = words[words.index("resume"):]
    return args, json.loads(args[args.index("--data") + 1])


def _suggested(project: Project, schema: dict[str, Any]) -> tuple[str, list[str], Any]:
    """Start a run of a wait step with `schema`: its run id, the suggested resume command's
    arguments and data (the same in start's output and `pending`)."""
    project.workflow("form", "steps:\n  - id: gate\n    wait: true\n    resume_schema: "
                     + json.dumps(schema) + "\n")
    doc = project.json("start", "form")
    command = doc["suspended"][0]["resume_command"]
    assert [row["resume_command"] for row in project.json("pending")] == [command]
    return doc["run_id"], *_data_of(command)


@pytest.mark.parametrize(("schema", "suggested"), SCHEMAS, ids=[json.dumps(s) for s, _ in SCHEMAS])
def test_the_suggested_data_passes_the_schema(project: Project, schema: dict[str, Any],
                                              suggested: Any) -> None:
    run_id, args, data = _suggested(project, schema)
    assert data == suggested
    _schema.validate(schema, data, "the suggestion")  # the validator resumes are checked with
    out = project.run(*args)  # the command as suggested
    assert out.code == 0, out.stderr
    assert project.json("show", run_id)["steps"]["gate"]["resume_data"] == data


@pytest.mark.parametrize("schema", NO_EXAMPLE, ids=[json.dumps(s) for s in NO_EXAMPLE])
def test_no_valid_example_suggests_the_placeholder(project: Project, schema: dict[str, Any]) -> None:
    _, args, data = _suggested(project, schema)
    assert data == {}
    before = project.snapshots()
    out = project.run(*args)
    assert out.code == 2 and "resume data for step 'gate' is not valid" in out.stderr
    assert project.snapshots() == before


def test_an_asks_suggestion_passes_the_step_schema_too(project: Project) -> None:
    # the answer must match the step's resume_schema and the ask's schema (both)
    project.workflow("interview", """
        steps:
          - id: ask-age
            resume_schema: {type: object, required: [by], properties: {by: {type: string}}}
    """, """
        def ask_age(ctx):
            return ctx.flow.ask(schema={"type": "object", "required": ["age"],
                                        "properties": {"age": {"type": "integer", "minimum": 18}}})
    """)
    doc = project.json("start", "interview")
    args, data = _data_of(doc["suspended"][0]["resume_command"])
    assert data == {"by": "...", "age": 18}
    assert project.run(*args).code == 0
    assert project.json("show", doc["run_id"])["output"] == data


def test_the_suggested_send_command_passes_the_events_schema(project: Project) -> None:
    project.workflow("parcel", """
        steps:
          - id: wait-for-parcel
    """, """
        def wait_for_parcel(ctx):
            ctx.flow.wait_for_event("shipped", schema={
                "type": "object", "required": ["weight", "at"],
                "properties": {"weight": {"type": "number", "exclusiveMinimum": 0},
                               "at": {"type": "string", "format": "date-time"}}})
    """)
    doc = project.json("start", "parcel")
    entry = doc["suspended"][0]
    assert entry["event"] == "shipped"
    words = shlex.split(entry["resume_command"])  # `wfrun send RUN shipped --data ...`
    args = words[words.index("send"):]
    data = json.loads(args[args.index("--data") + 1])
    assert data == {"weight": 0.5, "at": "2026-12-03T09:00:00Z"}
    assert project.run(*args).code == 0
    assert project.json("show", doc["run_id"])["status"] == "completed"


_TYPES = ["object", "array", "string", "number", "integer", "boolean", "null"]
_plain_schemas = st.recursive(
    st.fixed_dictionaries({}, optional={
        "type": st.one_of(st.sampled_from(_TYPES),
                          st.lists(st.sampled_from(_TYPES), min_size=1, max_size=3, unique=True)),
        "title": st.text(max_size=5)}),
    lambda inner: st.builds(
        lambda base, props, required: {**base, "properties": props,
                                       **({"required": required} if required else {})},
        st.fixed_dictionaries({}, optional={"type": st.sampled_from(["object", "array"])}),
        st.dictionaries(st.sampled_from("abcd"), inner, max_size=3),
        st.lists(st.sampled_from("abcde"), max_size=3, unique=True)),
    max_leaves=8)


@settings(max_examples=150, deadline=None)
@given(_plain_schemas)
def test_a_schema_of_types_and_fields_takes_its_example_unchecked(schema: dict[str, Any]) -> None:
    # such a schema's example is not checked against it (show and pending need no jsonschema
    # for it): every example made for one must pass it
    from wfrun._examples import _plain, example_data

    assert _plain(schema)
    _schema.validate(schema, example_data(schema), "the suggestion")
