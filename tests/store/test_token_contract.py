"""The start-token part of the Store contract (save_token, find_token, tokens, revoke_token),
run against every store (conftest.py)."""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

import pytest

from wfrun.errors import ConflictError
from wfrun.store.abc import Store
from wfrun.tokens import new_token, token_hash


def record(name: str, workflow: str = "wf") -> tuple[str, dict[str, Any]]:
    token = new_token()
    return token, {"name": name, "workflow": workflow, "hash": token_hash(token),
                   "created_at": "2026-01-01T00:00:00.000Z", "revoked": False, "revoked_at": None}


def test_a_saved_token_is_found_by_its_hash_from_another_store_object(
        open_store: Callable[[], Store]) -> None:
    store = open_store()
    assert store.tokens() == [] and store.find_token(token_hash("x")) is None
    token, saved = record("a")
    store.save_token(saved)
    other = open_store()
    assert other.find_token(token_hash(token)) == saved
    assert other.find_token(token_hash(token + "x")) is None
    assert other.tokens() == [saved]


def test_names_are_unique_and_tokens_listed_oldest_first(open_store: Callable[[], Store]) -> None:
    store = open_store()
    _, first = record("a")
    _, second = record("b", "other")
    store.save_token(first)
    store.save_token(second)
    with pytest.raises(ConflictError):
        store.save_token(record("a")[1])
    assert [t["name"] for t in open_store().tokens()] == ["a", "b"]


def test_revoking_is_durable_and_keeps_the_first_time(open_store: Callable[[], Store]) -> None:
    store = open_store()
    token, saved = record("a")
    store.save_token(saved)
    assert store.revoke_token("nope", "2026-01-02T00:00:00.000Z") is None
    revoked = store.revoke_token("a", "2026-01-02T00:00:00.000Z")
    assert revoked is not None and revoked["revoked"] is True
    again = open_store().revoke_token("a", "2026-01-03T00:00:00.000Z")
    assert again is not None and again["revoked_at"] == "2026-01-02T00:00:00.000Z"
    found = open_store().find_token(token_hash(token))
    assert found is not None and found["revoked"] is True
    with pytest.raises(ConflictError):  # a revoked token's name stays taken
        store.save_token(record("a")[1])


def test_find_compares_every_stored_hash_in_constant_time(
        open_store: Callable[[], Store], monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store()
    tokens = []
    for name in "abc":
        token, saved = record(name)
        store.save_token(saved)
        tokens.append(token)
    calls = []
    compare = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return compare(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    for wanted in [*tokens, new_token()]:  # the first, the last, and none: the same work
        calls.clear()
        store.find_token(token_hash(wanted))
        assert len(calls) == 3
