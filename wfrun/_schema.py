"""JSON Schema (Draft 2020-12) checks with messages for people; `jsonschema` is imported only
when a schema is used."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from wfrun.errors import SchemaViolation, UsageError

MAX_ERRORS_SHOWN = 3
MAX_VALUE_SHOWN = 40  # characters of an offending value quoted in a message
TYPE_WORDS = {
    "boolean": "true or false", "integer": "a whole number", "number": "a number",
    "string": "text", "object": "an object", "array": "a list", "null": "null",
}


NOT_SCHEMAS = ("enum", "const", "default", "examples")  # values, not schemas: never walked


def _refuse(uri: str) -> Any:
    """The registry's retrieval: wfrun never fetches a schema (from a URL or a file)."""
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(uri)


def _registry() -> Any:
    """A registry that knows the JSON Schema meta-schemas (bundled) and retrieves nothing."""
    from referencing import Registry

    return Registry(retrieve=_refuse)  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def format_checker() -> Any:
    """The format checker wfrun validates with: jsonschema's checks that need only the
    standard library, and wfrun's own for date-time, time, hostname, uri and uri-reference
    (wfrun._formats); every other format is an annotation. A copy: jsonschema's stays as it is."""
    from jsonschema import Draft202012Validator, FormatChecker

    from wfrun._formats import ADDED, KEPT

    ours = FormatChecker(formats=())
    theirs = Draft202012Validator.FORMAT_CHECKER.checkers
    ours.checkers.update({name: theirs[name] for name in KEPT if name in theirs})
    for name, check in ADDED.items():
        ours.checks(name)(check)
    return ours


@lru_cache(maxsize=64)
def _compiled(schema_text: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text)
    return Draft202012Validator(schema, format_checker=format_checker(), registry=_registry())


def checker(schema: object) -> Callable[[Any, Any], bool]:
    """`check(part, value)`: True if `value` passes `part` of `schema` (the whole schema, or a
    schema within it whose `$ref`s point into it), checked as `validate` checks."""
    from referencing.exceptions import Unresolvable

    whole = _compiled(json.dumps(schema, sort_keys=True, default=str))

    def check(part: Any, value: Any) -> bool:
        try:
            return bool(whole.evolve(schema=part).is_valid(value))
        except (Unresolvable, RecursionError):
            return False

    return check


def ref_problem(schema: object) -> str | None:
    """Why a `$ref` (or `$dynamicRef`) of `schema` cannot be followed without leaving the
    schema (a URL, another file) or points to nothing in it; None if every one resolves."""
    from jsonschema_specifications import REGISTRY  # type: ignore[import-untyped]
    from referencing.exceptions import PointerToNowhere, Unresolvable
    from referencing.jsonschema import DRAFT202012

    if not isinstance(schema, dict):
        return None
    resolver = REGISTRY.combine(_registry()).resolver_with_root(
        DRAFT202012.create_resource(schema))
    stack: list[tuple[Any, Any, str]] = [(schema, resolver, "$")]
    while stack:
        node, here, where = stack.pop()
        if isinstance(node, list):
            stack.extend((v, here, f"{where}[{i}]") for i, v in reversed(list(enumerate(node))))
            continue
        if not isinstance(node, dict):
            continue
        if node is not schema and isinstance(node.get("$id"), str):
            here = here.in_subresource(DRAFT202012.create_resource(node))
        for key in ("$ref", "$dynamicRef"):
            ref = node.get(key)
            if not isinstance(ref, str):
                continue
            try:
                here.lookup(ref)
            except PointerToNowhere:
                return f"{key} {ref!r} (at {where}) points to nothing in the schema"
            except Unresolvable:
                return (f"{key} {ref!r} (at {where}) points outside the schema: wfrun never "
                        "fetches schemas from URLs or files; put the definition under $defs "
                        "and refer to it as '#/$defs/NAME'")
        stack.extend((v, here, f"{where}.{k}") for k, v in reversed(list(node.items()))
                     if k not in NOT_SCHEMAS)
    return None


def schema_problem(schema: object) -> str | None:
    """Return why `schema` is not a valid Draft 2020-12 schema, or None if it is."""
    if not isinstance(schema, dict | bool):
        return f"a JSON Schema must be a mapping, not {type(schema).__name__}"
    from jsonschema import Draft202012Validator
    from jsonschema.exceptions import SchemaError

    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError as exc:
        where = exc.json_path if exc.path else "$"
        return f"{exc.message} (at {where})"
    return ref_problem(schema)


# Line breaks that JSON leaves as they are but str.splitlines() (and a terminal) breaks at.
_UNESCAPED_BREAKS = {ord(c): f"\\u{ord(c):04x}" for c in "\x85\u2028\u2029"}


def _shown(value: Any) -> str:
    """A value as JSON on one line, cut to a readable length."""
    text = json.dumps(value, ensure_ascii=False, default=str).translate(_UNESCAPED_BREAKS)
    return text if len(text) <= MAX_VALUE_SHOWN else text[:MAX_VALUE_SHOWN - 1] + "…"


def _quoted(name: Any) -> str:
    """A field name in double quotes, its control characters escaped (one line, always)."""
    return json.dumps(str(name), ensure_ascii=False).translate(_UNESCAPED_BREAKS)


def _field(path: Any) -> str:
    """`"approved"`, `"address.city"`, `"items[2]"`, or "the data" for the root."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return _quoted(text) if text else "the data"


def kind_words(schema: Any) -> str:
    """What a schema asks for, in words: `true or false`, `one of "low", "high"`, `text`."""
    if not isinstance(schema, dict):
        return "any value"
    if "const" in schema:
        return f"exactly {_shown(schema['const'])}"
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return "one of " + ", ".join(_shown(v) for v in schema["enum"])
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    words = [TYPE_WORDS.get(k, str(k)) for k in kinds]
    if not words and isinstance(schema.get("properties"), dict):
        words = ["an object"]
    return " or ".join(words) if words else "any value"


def needs(schema: Any) -> str | None:
    """The fields an object schema requires, with what each takes:
    `"approved" (true or false) and "reviewer" (text)`; None if it requires none."""
    if not isinstance(schema, dict):
        return None
    props = schema["properties"] if isinstance(schema.get("properties"), dict) else {}
    required = [r for r in schema.get("required") or () if isinstance(r, str)]
    if not required:
        for part in schema.get("allOf") or ():  # an ask's schema with the step's
            found = needs(part)
            if found:
                return found
        return None
    items = [f'{_quoted(name)} ({kind_words(props.get(name))})' for name in required]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _subject(what: str) -> str:
    if what.startswith(("input", "--input")):
        return "this workflow needs input with"
    if what.startswith(("resume data", "answer")):
        return "this step needs data with"
    return "it needs"


def describe(error: Any, what: str) -> str:
    """One jsonschema error as a phrase for people, naming the field and what it takes."""
    where, keyword, value = _field(error.absolute_path), error.validator, error.validator_value
    instance, schema = error.instance, error.schema
    if keyword == "type":
        fields = needs(schema) if where == "the data" else None
        if fields:
            got = "" if instance is None else f", not {_shown(instance)}"
            return f"{_subject(what)} {fields}{got}"
        return f"{where} must be {kind_words(schema)}, not {_shown(instance)}"
    if keyword in ("enum", "const"):
        return f"{where} must be {kind_words(schema)}, not {_shown(instance)}"
    bounds = {"minimum": "at least", "maximum": "at most", "exclusiveMinimum": "more than",
              "exclusiveMaximum": "less than"}
    if keyword in bounds:
        return f"{where} must be {bounds[keyword]} {value}, not {_shown(instance)}"
    if keyword == "multipleOf":
        return f"{where} must be a multiple of {value}, not {_shown(instance)}"
    if keyword in ("minLength", "maxLength"):
        most = "at least" if keyword == "minLength" else "at most"
        return f"{where} must be {most} {value} character{'s' if value != 1 else ''} long"
    if keyword in ("minItems", "maxItems"):
        most = "at least" if keyword == "minItems" else "at most"
        return f"{where} must have {most} {value} item{'s' if value != 1 else ''}"
    if keyword in ("minProperties", "maxProperties"):
        most = "at least" if keyword == "minProperties" else "at most"
        return f"{where} must have {most} {value} field{'s' if value != 1 else ''}"
    if keyword == "uniqueItems":
        return f"{where} must not repeat an item"
    if keyword == "pattern":
        return f"{where} must match the pattern {value}, not {_shown(instance)}"
    if keyword == "format":
        from wfrun._formats import WORDS

        return f"{where} must be {WORDS.get(value, f'a valid {value}')}, not {_shown(instance)}"
    if keyword in ("additionalProperties", "unevaluatedProperties") and isinstance(instance, dict):
        known = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        extra = [k for k in instance if k not in known]
        names = ", ".join(_quoted(k) for k in extra[:5]) or "a field"
        allowed = ", ".join(_quoted(k) for k in known) or "none"
        inside = "" if where == "the data" else f" in {where}"
        return f"{names} {'is' if len(extra) == 1 else 'are'} not expected{inside} " \
               f"(known fields: {allowed})"
    if keyword == "dependentRequired":
        return f"{where} is missing a field that another field requires ({error.message})"
    if keyword in ("anyOf", "oneOf"):
        return f"{where} does not match any of the allowed forms" if keyword == "anyOf" or \
            not error.context else f"{where} must match exactly one of the allowed forms"
    if keyword == "not":
        return f"{where} is a value that is not allowed here"
    if keyword == "false":
        return f"{where} is not allowed here"
    return f"{where}: {error.message}"


def _missing(error: Any) -> list[dict[str, str]]:
    """One entry per field a `required` error finds missing, with the field's JSON path."""
    props = error.schema.get("properties") if isinstance(error.schema, dict) else None
    props = props if isinstance(props, dict) else {}
    found = []
    for name in error.validator_value:
        if isinstance(error.instance, dict) and name not in error.instance:
            path = [*error.absolute_path, name]
            found.append({"path": error.json_path + "." + name if name.isidentifier()
                          else f"{error.json_path}[{json.dumps(name)}]",
                          "message": f"{_field(path)} ({kind_words(props.get(name))}) is missing"})
    return found


def validate(schema: object, data: object, what: str) -> None:
    """Raise SchemaViolation with a sentence for people naming `what` and each offending field
    (its `errors` keep each field's JSON path, for --json consumers)."""
    if schema is None or schema is True:
        return
    from referencing.exceptions import Unresolvable

    validator = _compiled(json.dumps(schema, sort_keys=True, default=str))
    try:
        errors = sorted(validator.iter_errors(data),
                        key=lambda e: (len(e.path), list(map(str, e.path))))
    except Unresolvable as exc:  # a schema that was not checked first (never fetched)
        raise UsageError(f"{what} cannot be checked: its schema's $ref "
                         f"{getattr(exc, 'ref', str(exc))!r} points outside the schema, and "
                         "wfrun never fetches schemas; fix the schema") from None
    if not errors:
        return
    details: list[dict[str, str]] = []
    for error in errors:
        found = _missing(error) if error.validator == "required" else [
            {"path": error.json_path, "message": describe(error, what)}]
        details.extend(d for d in found if d not in details)
    shown = "; ".join(d["message"] for d in details[:MAX_ERRORS_SHOWN])
    more = f" (and {len(details) - MAX_ERRORS_SHOWN} more)" if len(details) > MAX_ERRORS_SHOWN else ""
    state = "is missing" if data is None else "is not valid"
    raise SchemaViolation(f"{what} {state}: {shown}{more}", details)
