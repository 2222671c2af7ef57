"""Text fields (query parameters, a form's fields) read as the data a JSON Schema asks for:
`approved=true` is true where the schema's property is a boolean, `amount=12.5` a number.
Shared by the HTTP server (resume and event URLs) and the engine (an event kept in a run's
inbox is read again with the schema of the step that takes it)."""

from __future__ import annotations

import math
import re
from typing import Any

# A number as text: ASCII digits with an optional minus sign, fraction and exponent, as JSON
# writes numbers (and an HTML number input sends them: `007` and `.5` too); not what int() and
# float() also take (`1_000`, full-width or other scripts' digits, spaces, `+1`, `inf`, `nan`).
_INTEGER = re.compile(r"-?[0-9]+")
_NUMBER = re.compile(r"-?([0-9]+(\.[0-9]+)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
MAX_NUMBER_TEXT = 100  # characters: no number a person means is that long
_DEPTH = 8  # $ref and anyOf levels followed: a schema pointing at itself stops there


def resolve_ref(schema: Any, root: Any, depth: int = 0) -> Any:
    """`schema`, or what its local `$ref` (`#/$defs/NAME`, `#/definitions/NAME`) points at in
    `root` (the approval page's fields follow it too: wfrun.http._forms)."""
    while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and depth < _DEPTH:
        ref: str = schema["$ref"]
        if not ref.startswith("#/"):
            return schema  # not in this schema: nothing to learn from it
        target = root
        for part in ref[2:].split("/"):
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        schema, depth = target, depth + 1
    return schema


def _types(schema: Any, root: Any = None, depth: int = 0) -> list[str]:
    """The JSON types `schema` allows, its `$ref`, `anyOf` and `oneOf` followed."""
    schema = resolve_ref(schema, root, depth)
    if not isinstance(schema, dict) or depth >= _DEPTH:
        return []
    kind = schema.get("type")
    found = [kind] if isinstance(kind, str) else [k for k in kind or () if isinstance(k, str)]
    for key in ("anyOf", "oneOf"):
        for part in schema.get(key) or ():
            found += [k for k in _types(part, root, depth + 1) if k not in found]
    return found


def _properties(schema: Any, root: Any = None, depth: int = 0) -> dict[str, Any]:
    """The properties a schema names, its `allOf` parts' (an ask's schema) and `$ref`'s
    included."""
    schema = resolve_ref(schema, root, depth)
    if not isinstance(schema, dict) or depth >= _DEPTH:
        return {}
    found: dict[str, Any] = {}
    for part in schema.get("allOf") or ():
        found.update(_properties(part, root, depth + 1))
    props = schema.get("properties")
    if isinstance(props, dict):
        found.update(props)
    return found


def _items(schema: Any, root: Any) -> Any:
    """The schema of an array's items, if `schema` (or one of its branches) is an array's."""
    schema = resolve_ref(schema, root)
    if not isinstance(schema, dict):
        return None
    if isinstance(schema.get("items"), dict):
        return schema["items"]
    for key in ("anyOf", "oneOf"):
        for part in schema.get(key) or ():
            items = _items(part, root)
            if items is not None:
                return items
    return None


def read_number(raw: str, integer: bool = False) -> int | float | None:
    """The number `raw` writes (an int for digits alone; with `integer`, only those), or None
    for text that is not an ASCII number (see `_NUMBER`), or one too long or not finite."""
    if len(raw) > MAX_NUMBER_TEXT:
        return None
    if _INTEGER.fullmatch(raw):
        return int(raw)
    if integer or not _NUMBER.fullmatch(raw):
        return None
    value = float(raw)
    return value if math.isfinite(value) else None


def coerce_text(schema: Any, raw: str, root: Any = None) -> Any:
    """A text field as the type `schema` asks for (boolean, integer, number), or the text
    itself when it asks for none of those or the text does not read as one."""
    for kind in _types(schema, root if root is not None else schema):
        if kind == "boolean" and raw.lower() in ("true", "false"):
            return raw.lower() == "true"
        if kind in ("integer", "number"):
            number = read_number(raw, integer=kind == "integer")
            if number is not None:
                return number
    return raw


def query_data(schema: Any, query: dict[str, list[str]],
               reserved: tuple[str, ...] = ("token", "action")) -> dict[str, Any] | None:
    """The data of a request with no body: its query parameters but the `reserved` ones (a
    resume URL's `token` and `action`; an event URL's `token`), as `fields_data` reads them;
    None when there are none."""
    return fields_data(schema, {k: v for k, v in query.items() if k not in reserved}) or None


def fields_data(schema: Any, fields: dict[str, list[str]]) -> dict[str, Any]:
    """Text fields (query parameters, or a form body a service posted) as an object: a
    repeated field is a list, and each value is coerced to the type `schema`'s property of
    that name asks for (`approved=true` is true where it asks for a boolean)."""
    props = _properties(schema, schema)
    data: dict[str, Any] = {}
    for name, values in fields.items():
        prop = props.get(name)
        if len(values) == 1 and "array" not in _types(prop, schema):
            data[name] = coerce_text(prop, values[0], schema)
        else:
            items = _items(prop, schema)
            data[name] = [coerce_text(items, v, schema) for v in values]
    return data
