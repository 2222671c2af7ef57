"""JSON Schema (Draft 2020-12) checks; `jsonschema` is imported only when a schema is used."""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from wfrun.errors import SchemaViolation

MAX_ERRORS_SHOWN = 3


@lru_cache(maxsize=64)
def _compiled(schema_text: str) -> Any:
    from jsonschema import Draft202012Validator

    schema = json.loads(schema_text)
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


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
    return None


def validate(schema: object, data: object, what: str) -> None:
    """Raise SchemaViolation naming `what` and the JSON path of each offending value."""
    if schema is None or schema is True:
        return
    validator = _compiled(json.dumps(schema, sort_keys=True, default=str))
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.path), list(map(str, e.path))))
    if not errors:
        return
    details = [{"path": e.json_path, "message": e.message} for e in errors]
    shown = "; ".join(f"{d['path']}: {d['message']}" for d in details[:MAX_ERRORS_SHOWN])
    more = f" (and {len(details) - MAX_ERRORS_SHOWN} more)" if len(details) > MAX_ERRORS_SHOWN else ""
    raise SchemaViolation(f"{what} does not match its schema: {shown}{more}", details)
