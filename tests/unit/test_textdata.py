"""Text fields (query parameters, form fields) typed as a JSON Schema asks: wfrun._textdata."""

from __future__ import annotations

from wfrun._textdata import fields_data, query_data

SCHEMA = {
    "type": "object",
    "$defs": {"flag": {"type": "boolean"}, "amounts": {"type": "array", "items": {"type": "number"}}},
    "properties": {
        "ok": {"$ref": "#/$defs/flag"},
        "n": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
        "x": {"oneOf": [{"type": "number"}, {"type": "string", "maxLength": 0}]},
        "amounts": {"$ref": "#/$defs/amounts"},
        "name": {"type": "string"},
        "loop": {"$ref": "#/properties/loop"},
    },
}


def test_refs_and_branches_are_followed() -> None:
    assert fields_data(SCHEMA, {"ok": ["true"], "n": ["5"], "x": ["2.5"], "amounts": ["1"],
                                "name": ["7"], "loop": ["true"], "other": ["a", "b"]}) == {
        "ok": True, "n": 5, "x": 2.5, "amounts": [1], "name": "7", "loop": "true",
        "other": ["a", "b"]}


def test_text_that_does_not_read_as_the_type_stays_text() -> None:
    assert fields_data(SCHEMA, {"ok": ["yes"], "n": ["five"]}) == {"ok": "yes", "n": "five"}


def test_reserved_query_parameters_are_not_data() -> None:
    query = {"token": ["t"], "action": ["approved"], "ok": ["false"]}
    assert query_data(SCHEMA, query) == {"ok": False}
    assert query_data(SCHEMA, query, reserved=("token",)) == {"action": "approved", "ok": False}
    assert query_data(None, {"token": ["t"]}) is None
