"""The data a suggested command carries (`resume_command`, `wfrun send`): a small value that
passes the step's schema, checked with the validator resumes are checked with, or the
placeholder `{}` where none is found (a `pattern`, a `oneOf` it cannot satisfy): a suggestion
never carries data its own schema would refuse."""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from wfrun._formats import SAMPLES
from wfrun._textdata import resolve_ref

PLACEHOLDER: dict[str, Any] = {}  # what a suggestion carries when no valid example is found
_DEPTH = 8  # nested schemas followed ($ref, properties, items): a schema that refers to
# itself stops there
_NONE = object()  # no example found
_NUMERIC = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "multipleOf")
_STRING = ("minLength", "maxLength", "pattern", "format")
_ARRAY = ("items", "prefixItems", "minItems", "maxItems", "contains", "uniqueItems")
_OBJECT = ("properties", "required", "additionalProperties", "minProperties",
           "dependentRequired", "patternProperties")

Check = Callable[[Any, Any], bool]  # (part of the schema, value) -> the value passes it


def example_data(schema: Any) -> Any:
    """A small value that passes `schema`, built from its `const`, `examples`, `default`,
    `enum`, types, bounds and required properties; `{}` if no valid one is found."""
    if not isinstance(schema, dict) or not schema:
        return {}
    return copy.deepcopy(_example(json.dumps(schema, sort_keys=True, default=str)))


# A schema of only these keywords (types, properties, required fields) takes every value the
# builder makes for it: it is not checked again, which spares `show` and `pending` importing
# jsonschema for the common approval form.
_PLAIN_KEYS = frozenset(("type", "properties", "required", "title", "description", "$comment"))
_TYPES = frozenset(("object", "array", "string", "number", "integer", "boolean", "null"))


def _plain(schema: Any) -> bool:
    """True if `schema` and its properties use only _PLAIN_KEYS, with known type names."""
    if schema is True:
        return True
    if not isinstance(schema, dict) or not _PLAIN_KEYS.issuperset(schema):
        return False
    kinds = schema.get("type", [])
    kinds = [kinds] if isinstance(kinds, str) else kinds
    props = schema.get("properties", {})
    return (isinstance(kinds, list) and _TYPES.issuperset(kinds)
            and isinstance(schema.get("required", []), list)
            and all(isinstance(name, str) for name in schema.get("required", []))
            and isinstance(props, dict) and all(_plain(sub) for sub in props.values()))


def _anything(part: Any, value: Any) -> bool:
    return True


@lru_cache(maxsize=64)
def _example(schema_text: str) -> Any:
    schema = json.loads(schema_text)
    if _plain(schema):
        return _build(schema, schema, _anything, 0)
    from wfrun._schema import checker

    check = checker(schema)
    value = _build(schema, schema, check, 0)
    return value if value is not _NONE and check(schema, value) else PLACEHOLDER


def _build(schema: Any, root: Any, check: Check, depth: int) -> Any:
    """An example of `schema` (a part of `root`), or _NONE."""
    schema = resolve_ref(schema, root)
    if schema is True or schema == {}:
        return {}
    if not isinstance(schema, dict) or depth > _DEPTH:
        return _NONE
    given: list[Any] = [schema["const"]] if "const" in schema else []
    given += schema["examples"] if isinstance(schema.get("examples"), list) else []
    given += [schema["default"]] if "default" in schema else []
    enum = schema.get("enum")
    given += enum if isinstance(enum, list) else []
    for value in given:
        if check(schema, value):
            return value
    if "const" in schema or isinstance(enum, list):
        return _NONE  # no other value can pass
    return _first(check, schema, _built(schema, root, check, depth))


def _first(check: Check, schema: Any, values: list[Any]) -> Any:
    """The first of `values` that passes `schema`, or _NONE."""
    return next((v for v in values if v is not _NONE and check(schema, v)), _NONE)


def _built(schema: dict[str, Any], root: Any, check: Check, depth: int) -> list[Any]:
    """Values made from the schema's keywords, best first."""
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            rest = {k: v for k, v in schema.items() if k != key}
            return [_build(_merged(rest, branch, root), root, check, depth + 1)
                    for branch in branches]
    if isinstance(schema.get("allOf"), list):
        merged: Any = {k: v for k, v in schema.items() if k != "allOf"}
        for part in schema["allOf"]:
            merged = _merged(merged, part, root)
        return [_build(merged, root, check, depth + 1)]
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    if not kinds:  # the type the keywords are about
        kinds = [kind for kind, keys in (("object", _OBJECT), ("array", _ARRAY),
                                         ("string", _STRING), ("number", _NUMERIC))
                 if any(k in schema for k in keys)] or ["any"]
    values: list[Any] = []
    for kind in kinds:
        if kind in ("integer", "number"):
            values += _numbers(schema, kind == "integer")
        elif kind == "string":
            values += _strings(schema)
        elif kind == "array":
            values.append(_array(schema, root, check, depth))
        elif kind == "object":
            values.append(_object(schema, root, check, depth))
        elif kind in ("boolean", "null"):
            values.append(True if kind == "boolean" else None)
        else:  # any value: `{}` first, as a suggestion has always had
            values += [{}, "...", 0, True, None, []]
    return values


def _merged(base: Any, part: Any, root: Any) -> Any:
    """`base` and `part` as one schema (an `allOf` of two, or a branch with what surrounds
    it): their properties joined, their required fields both, other keywords base's first."""
    part = resolve_ref(part, root)
    if not isinstance(base, dict) or not isinstance(part, dict):
        return part if isinstance(base, dict) and not base else base
    merged = {**part, **base}
    props = {**(part.get("properties") or {})}
    for name, sub in (base.get("properties") or {}).items():
        props[name] = {"allOf": [sub, props[name]]} if name in props else sub
    if props:
        merged["properties"] = props
    required = [*(base.get("required") or []), *(part.get("required") or [])]
    if required:
        merged["required"] = list(dict.fromkeys(required))
    return merged


def _numbers(schema: dict[str, Any], integer: bool) -> list[Any]:
    """0, or the nearest numbers its bounds and `multipleOf` allow."""
    def num(key: str) -> float | None:
        value = schema.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    low, xlow, high, xhigh = num("minimum"), num("exclusiveMinimum"), num("maximum"), \
        num("exclusiveMaximum")
    step = num("multipleOf")
    floor: list[float] = [b for b in (low, None if xlow is None else xlow + (1 if integer else 0))
                          if b is not None]
    ceiling: list[float] = [b for b in (high, None if xhigh is None else xhigh - (1 if integer
                                                                                 else 0))
                            if b is not None]
    found: list[Any] = [0]
    found += [max(floor)] if floor else []
    found += [min(ceiling)] if ceiling else []
    if xlow is not None:
        found.append(xlow + 0.5 if xhigh is None else (xlow + xhigh) / 2)
    if floor and ceiling:
        found.append((max(floor) + min(ceiling)) / 2)
    if step:
        found = [v for value in found for v in (math.ceil(value / step) * step,
                                                math.floor(value / step) * step)]
    if integer:
        found = [v for value in found for v in (math.ceil(value), math.floor(value))]
    return [int(v) if float(v).is_integer() else v for v in found]


def _strings(schema: dict[str, Any]) -> list[str]:
    """The sample of its format, or `...` made as long as it must be."""
    text = "..."
    least, most = schema.get("minLength"), schema.get("maxLength")
    if isinstance(least, int) and len(text) < least:
        text = "." * least
    if isinstance(most, int) and len(text) > most:
        text = text[:max(most, 0)]
    fmt = schema.get("format")
    sample = SAMPLES.get(fmt, "") if isinstance(fmt, str) else ""
    return [sample, text] if sample else [text]


def _array(schema: dict[str, Any], root: Any, check: Check, depth: int) -> Any:
    """As many items as `minItems` asks (its `prefixItems`' first), and one that `contains`
    asks for."""
    least: int = schema["minItems"] if isinstance(schema.get("minItems"), int) else 0
    prefix: list[Any] = schema["prefixItems"] if isinstance(schema.get("prefixItems"), list) else []
    items = [_build(part, root, check, depth + 1) for part in prefix[:least]]
    if len(items) < least:
        item = _build(schema.get("items", True), root, check, depth + 1)
        items += [copy.deepcopy(item) for _ in range(least - len(items))]
    if "contains" in schema and not items:
        items.append(_build(schema["contains"], root, check, depth + 1))
    return _NONE if any(item is _NONE for item in items) else items


def _object(schema: dict[str, Any], root: Any, check: Check, depth: int) -> Any:
    """Its required properties (the fields they require too: `dependentRequired`), or, if
    none is required, its first two as a hint where they pass."""
    props: dict[str, Any] = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    others = schema.get("additionalProperties", True)
    required = [n for n in schema.get("required") or () if isinstance(n, str)]
    depends: dict[str, Any] = schema["dependentRequired"] if isinstance(
        schema.get("dependentRequired"), dict) else {}
    names = list(dict.fromkeys(required))
    for name in names:  # grows as it goes
        names += [n for n in depends.get(name) or () if isinstance(n, str) and n not in names]
    value: dict[str, Any] = {}
    for name in names:
        value[name] = _build(props.get(name, others), root, check, depth + 1)
        if value[name] is _NONE:
            return _NONE
    if not required:
        for name in list(props)[:2]:
            built = _build(props[name], root, check, depth + 1)
            if built is not _NONE and check(schema, {**value, name: built}):
                value[name] = built
    return value
