"""The store's JSON encoder gives exactly what json's public encoder gives."""

from __future__ import annotations

import enum
import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wfrun.store._jsonenc import encoder

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=100, deadline=None)
@given(value=JSON)
def test_same_text_as_json(value: Any) -> None:
    strict = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
    assert encoder(allow_nan=False)(value) == strict(value)
    assert encoder(allow_nan=True, default=str)(value) == json.JSONEncoder(
        ensure_ascii=False, default=str).encode(value)


class Level(enum.IntEnum):
    HIGH = 3


@pytest.mark.parametrize("value", [True, False, None, Level.HIGH, 10**40, -0.0, "é\n\"",
                                   {"a": [1, {"b": None}]}, (1, 2)])
def test_scalars_and_subclasses(value: Any) -> None:
    assert encoder(allow_nan=False)(value) == json.JSONEncoder(
        ensure_ascii=False, allow_nan=False).encode(value)


@pytest.mark.parametrize("value", [math.nan, [math.inf], {"x": -math.inf}])
def test_nan_refused_or_written_as_json_module_does(value: Any) -> None:
    with pytest.raises(ValueError):
        encoder(allow_nan=False)(value)
    assert encoder(allow_nan=True)(value) == json.dumps(value, ensure_ascii=False)


def test_default_turns_unknown_objects_into_text() -> None:
    assert encoder(allow_nan=True, default=str)({"at": object}) == '{"at": "<class \'object\'>"}'
    with pytest.raises(TypeError):
        encoder(allow_nan=False)({"at": object})
