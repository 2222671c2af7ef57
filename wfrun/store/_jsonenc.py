"""JSON text through json's C encoder made once: `json.dumps` and `JSONEncoder.encode` build a
new C encoder for every value that is not a string, a cost the file store pays dozens of times
per write (each key and step of a snapshot, each history event)."""

from __future__ import annotations

import json
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any


def encoder(*, allow_nan: bool, default: Callable[[Any], Any] | None = None) -> Callable[[Any], str]:
    """A function giving what `JSONEncoder(ensure_ascii=False, allow_nan=..., default=...)`'s
    `encode` gives, faster. The values must not contain themselves (the store's are detached
    JSON copies): unlike `encode`, it does not look for cycles."""
    plain = json.JSONEncoder(ensure_ascii=False, allow_nan=allow_nan, default=default)
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # an interpreter without json's C accelerator
        return plain.encode
    try:
        whole = make(None, plain.default, encode_basestring, None, ": ", ", ", False, False,
                     allow_nan)
    except TypeError:  # the private constructor's signature changed: keep the public path
        return plain.encode

    def encode(value: Any) -> str:
        kind = type(value)
        if kind is str:
            return encode_basestring(value)
        if value is None:
            return "null"
        if kind is int:
            return int.__repr__(value)
        if kind is bool:
            return "true" if value else "false"
        return "".join(whole(value, 0))

    return encode
