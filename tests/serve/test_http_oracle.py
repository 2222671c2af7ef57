"""Issue 18.15: a link to an unknown run costs what a link to a known run with a wrong token
costs (the same snapshot loads and token computations), so timing does not tell which runs
exist."""

from __future__ import annotations

from typing import Any

import pytest

from wfrun.engine import _links
from wfrun.store.file import FileStore

from .conftest import Server, post_json


def _work(server: Server, monkeypatch: pytest.MonkeyPatch, url: str) -> dict[str, int]:
    """What answering one request to `url` did: snapshots read, tokens computed."""
    done = {"loads": 0, "tokens": 0}
    load, make_token = FileStore.load, _links.make_token

    def counting_load(self: FileStore, run_id: str, known: Any = None) -> Any:
        run = load(self, run_id, known)
        if run is not known:  # (a state this process holds, still stored, is not read again)
            done["loads"] += 1
        return run

    def counting_token(*args: Any) -> str:
        done["tokens"] += 1
        return make_token(*args)

    with monkeypatch.context() as patch:
        patch.setattr(FileStore, "load", counting_load)
        patch.setattr(_links, "make_token", counting_token)
        reply = post_json(url, {"approved": True})
    assert reply.status == 404 and reply.body == b'{"error": "not found"}\n'
    return done


def test_an_unknown_run_costs_what_a_wrong_token_costs(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    doc = server.start("approval")
    url = doc["suspended"][0]["resume_url"]
    token = url.split("token=")[1]
    wrong = url.replace(token, "A" * len(token))
    unknown = wrong.replace(doc["run_id"], "01m8zzzzzzzzzzzzzzzzzzzzzz")
    before = server.project.snapshots()
    for _ in range(2):  # the first unknown run also picks the stored run it reads instead
        known_cost = _work(server, monkeypatch, wrong)
        unknown_cost = _work(server, monkeypatch, unknown)
        assert known_cost == unknown_cost == {"loads": 1, "tokens": 1}
    other_step = _work(server, monkeypatch, unknown.replace("/approve/", "/nope/"))
    assert other_step == {"loads": 1, "tokens": 1}
    assert server.project.snapshots() == before
