"""The approval form: fields built from a resume_schema, and the fields it submits turned back
into data of the types the schema asks for (what services send: `wfrun._textdata`)."""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass, field
from typing import Any

from wfrun._jsoninput import parse_json
from wfrun._textdata import query_data, read_number, resolve_ref
from wfrun.errors import UsageError

FIELD_PREFIX = "field:"
JSON_FIELD = "_wfrun_json"


@dataclass
class Field:
    """One input of the approval form."""

    name: str
    label: str
    kind: str  # checkbox | select | integer | number | text | json | action
    required: bool
    description: str = ""
    options: list[Any] = field(default_factory=list)  # a select's values; it posts their index
    default: Any = None

    def option_labels(self) -> list[str]:
        """What a select shows for each of its options, all different: text as itself and
        other values as JSON (`1`, `true`, `null`), or, where that would show two the same
        (an enum of `1` and `"1"`), every option as JSON (`1`, `"1"`)."""
        plain = [o if isinstance(o, str) else json.dumps(o, ensure_ascii=False, default=str)
                 for o in self.options]
        if len(set(plain)) == len(plain):
            return plain
        return [json.dumps(o, ensure_ascii=False, default=str) for o in self.options]


def json_key(value: Any) -> str:
    """`value` as JSON, object keys sorted: equal only for the same JSON value, its type
    included (`1`, `"1"`, `true` and `1.0` are four; Python has `1 == True == 1.0`)."""
    try:
        return json.dumps(value, sort_keys=True, default=repr)  # (YAML may give a date)
    except TypeError:  # keys of mixed types
        return repr(value)


def _unique(values: list[Any]) -> list[Any]:
    """`values` without repeats of the same JSON value, in their order."""
    found: dict[str, Any] = {}
    for value in values:
        found.setdefault(json_key(value), value)
    return list(found.values())


def _type_of(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return kind if isinstance(kind, str) else None


def fields_for(schema: Any, actions: list[str] | tuple[str, ...] = ()) -> list[Field] | None:
    """The form's fields for an object schema with properties; None means one JSON box.

    A boolean property named after one of the step's `actions` (`approved` beside the
    Approve button) is no input of its own: it is true when that action's button is used."""
    if not isinstance(schema, dict) or not isinstance(schema.get("properties"), dict):
        return None
    required = set(schema.get("required") or [])
    result = []
    for name, prop in schema["properties"].items():
        prop = prop if isinstance(prop, dict) else {}
        # what a local $ref points at, as query parameters and a service's form are read
        # (`{"$ref": "#/$defs/amount"}` to an integer is a number input, not a JSON box)
        target = resolve_ref(prop, schema)
        target = target if isinstance(target, dict) else {}
        kind = _type_of(target)
        if isinstance(target.get("enum"), list) and target["enum"]:
            form_kind = "select"
        elif kind == "boolean":
            form_kind = "action" if name in actions else "checkbox"
        elif kind in ("integer", "number", "string"):
            form_kind = "text" if kind == "string" else kind
        else:
            form_kind = "json"
        result.append(Field(
            name=name, label=str(prop.get("title") or target.get("title") or name),
            kind=form_kind, required=name in required,
            description=str(prop.get("description") or target.get("description") or ""),
            options=_unique(list(target.get("enum") or [])),
            default=prop["default"] if "default" in prop else target.get("default"),
        ))
    return result


def page_values(schema: Any, query: dict[str, list[str]],
                actions: list[str] | tuple[str, ...] = ()) -> dict[str, Any] | None:
    """What the approval page's fields start with, from the URL's query parameters: typed as
    a body-less request's are (`query_data`), except that a JSON box's parameter holding JSON
    is that value (`{"a":1}` an object, not the text of one), as the box sends it."""
    values = query_data(schema, query)
    fields = fields_for(schema, actions)
    if values is None or fields is None:
        return values
    for spec in fields:
        raw = query.get(spec.name)
        if spec.kind == "json" and spec.name in values and raw is not None and len(raw) == 1:
            with contextlib.suppress(UsageError):  # not JSON: shown as the text it is
                values[spec.name] = parse_json(raw[0].encode(), spec.name)
    return values


def _coerce(spec: Field, raw: str | None) -> tuple[bool, Any]:
    """(present, value) for one submitted field; raises ValueError with a message."""
    if spec.kind == "action":
        return False, None  # set from the button by form_data
    if spec.kind == "checkbox":
        return True, raw is not None
    if raw is None or (raw == "" and not (spec.kind == "text" and spec.required)):
        return False, None
    if spec.kind == "select":
        if not (raw.isascii() and raw.isdigit()) or int(raw) >= len(spec.options):
            raise ValueError("choose one of the listed values")
        return True, spec.options[int(raw)]
    if spec.kind in ("integer", "number"):  # ASCII number text only, as for query parameters
        number = read_number(raw, integer=spec.kind == "integer")
        if number is None:
            raise ValueError("enter a whole number" if spec.kind == "integer" else
                             "enter a number")
        return True, number
    if spec.kind == "json":
        try:
            return True, parse_json(raw.encode(), spec.name)
        except UsageError:
            raise ValueError("enter valid JSON") from None
    return True, raw


def form_data(
    schema: Any, form: dict[str, list[str]], action: str | None = None,
    actions: list[str] | tuple[str, ...] = (),
) -> tuple[Any, list[dict[str, str]]]:
    """The resume data an approval form submitted (with the button's `action`), and field
    errors (JSON paths, messages naming the field) if any."""
    fields = fields_for(schema, actions)
    if fields is None:
        raw = (form.get(JSON_FIELD) or [""])[0].strip()
        if not raw:
            return None, []
        try:
            return parse_json(raw.encode(), "data"), []
        except UsageError:
            return None, [{"path": "$", "message": "the data is not valid JSON"}]
    data: dict[str, Any] = {}
    errors = []
    for spec in fields:
        if spec.kind == "action":
            data[spec.name] = action == spec.name
            continue
        values = form.get(FIELD_PREFIX + spec.name)
        try:
            present, value = _coerce(spec, values[0] if values else None)
        except ValueError as exc:
            errors.append({"path": f"$.{spec.name}", "message": f"{spec.label}: {exc}"})
            continue
        if present:
            data[spec.name] = value
    return data, errors
