"""Issue 21.2: `POST /workflows/W/runs` with a bearer token from `wfrun token create` (SPEC §5, §7).

Tokens are made with the real CLI; requests go to an in-process `wfrun serve` over real HTTP.
"""

from __future__ import annotations

import hmac
import json
import os
import shutil
import stat
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project

from wfrun.store import _tokens
from wfrun.store.file import FileStore

from .conftest import Response, Server, http, post_json, running_server

ORDER = {"order": "o-1001", "email": "ann@example.com",
         "items": [{"sku": "tea", "qty": 2, "price": 4.5}, {"sku": "mug", "qty": 1, "price": 12}]}
GATED = """
    name: gated
    input_schema:
      type: object
      required: [go]
      properties: {go: {type: string}}
    steps:
      - id: first
      - id: second
"""
GATED_PY = """
import os, time

def first(ctx):
    deadline = time.monotonic() + 10
    while not os.path.exists(ctx.input["go"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"went": os.path.exists(ctx.input["go"])}

def second(ctx):
    return ctx.steps["first"].output
"""


@pytest.fixture
def shop(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The webhook-order example, another workflow (`gated`), and a server on a free port."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"webhook-order{suffix}", project.workflows)
    project.workflow("gated", GATED, GATED_PY)
    with running_server(project, monkeypatch) as running:
        yield running


def make_token(project: Project, workflow: str, name: str | None = None) -> str:
    """A token made by `wfrun token create` (it prints the token alone on stdout)."""
    out = project.run("token", "create", "--workflow", workflow, *(["--name", name] if name else []))
    assert out.code == 0, out.stderr
    token = out.stdout.strip()
    assert token.startswith("wfr_") and "\n" not in token
    return token


def start(server: Server, workflow: str, token: str | None, body: Any = ORDER,
          headers: dict[str, str] | None = None) -> Response:
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return post_json(f"{server.base}/workflows/{workflow}/runs", body, {**auth, **(headers or {})})


def runs(project: Project) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = project.json("list", "--all")
    return listed


def test_a_start_answers_202_once_stored_and_the_run_executes_in_the_background(
        shop: Server, tmp_path: Path) -> None:
    token = make_token(shop.project, "webhook-order")
    reply = start(shop, "webhook-order", token)
    assert reply.status == 202, reply.text
    doc = reply.json()
    assert set(doc) == {"run_id", "status"} and doc["status"] == "running"
    run = shop.wait_until_settled(doc["run_id"])
    assert run.status == "completed" and run.input == ORDER
    assert run.output == {"order": "o-1001", "total": 21.0, "parcel": "parcel-o-1001",
                          "email": "ann@example.com"}
    shown = shop.project.json("show", doc["run_id"])
    assert shown["workflow"] == "webhook-order" and shown["status"] == "completed"
    assert shown["history"][0]["type"] == "started"
    logs = shop.project.run("logs", doc["run_id"]).stdout
    assert "order o-1001 confirmed: 3 item(s), total 21.00" in logs


def test_the_202_comes_before_any_step_executes(shop: Server, tmp_path: Path) -> None:
    token = make_token(shop.project, "gated")
    go = tmp_path / "go"
    reply = start(shop, "gated", token, {"go": str(go)})
    assert reply.status == 202 and reply.json()["status"] == "running"
    run_id = reply.json()["run_id"]
    stored = shop.load(run_id)  # stored, and its first step has not finished
    assert stored.status == "running" and stored.steps["second"].status == "pending"
    go.touch()
    run = shop.wait_until_settled(run_id)
    assert run.status == "completed" and run.output == {"went": True}


def test_a_stored_run_the_server_did_not_execute_is_continued_by_tick(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order")
    shop.httpd.starts.continue_later = lambda run_id: None  # as if the server stopped at once
    reply = start(shop, "webhook-order", token)
    assert reply.status == 202
    run_id = reply.json()["run_id"]
    assert shop.load(run_id).status == "running"
    ticked = shop.project.json("tick")
    assert [(a["run_id"], a["status"]) for a in ticked["advanced"]] == [(run_id, "completed")]
    assert shop.load(run_id).status == "completed"


def test_input_failing_the_schema_gets_422_and_writes_nothing(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order")
    before = shop.project.snapshots()
    bad = {**ORDER, "items": [{"sku": "tea", "qty": 0, "price": 4.5}]}
    reply = start(shop, "webhook-order", token, bad)
    assert reply.status == 422
    assert reply.json()["error"] == ("input of workflow 'webhook-order' is not valid: "
                                     "\"items[0].qty\" must be at least 1, not 0")
    assert reply.json()["errors"][0]["path"] == "$.items[0].qty"
    missing = start(shop, "webhook-order", token, {"order": "o-1"})
    assert missing.status == 422 and "items" in missing.json()["error"]
    not_json = http(f"{shop.base}/workflows/webhook-order/runs", "POST", b"{order",
                    {"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    assert not_json.status == 400 and "is not valid JSON" in not_json.json()["error"]
    assert shop.project.snapshots() == before
    assert runs(shop.project) == []


def test_a_retried_start_with_the_same_idempotency_key_is_the_same_run(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order")
    key = {"Idempotency-Key": "order-o-1001"}
    first = start(shop, "webhook-order", token, headers=key)
    assert first.status == 202
    run_id = first.json()["run_id"]
    shop.wait_until_settled(run_id)
    again = start(shop, "webhook-order", token, headers=key)
    assert again.status == 202 and again.json() == {"run_id": run_id, "status": "completed"}
    assert [r["run_id"] for r in runs(shop.project)] == [run_id]
    other_key = start(shop, "webhook-order", token, headers={"Idempotency-Key": "order-o-1002"})
    assert other_key.status == 202 and other_key.json()["run_id"] != run_id
    no_key = start(shop, "webhook-order", token)
    assert no_key.status == 202 and no_key.json()["run_id"] not in (run_id,
                                                                    other_key.json()["run_id"])


def test_the_same_key_with_another_body_gets_409_and_starts_nothing(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order")
    key = {"Idempotency-Key": "order-o-1001"}
    run_id = start(shop, "webhook-order", token, headers=key).json()["run_id"]
    shop.wait_until_settled(run_id)
    before = shop.project.snapshots()
    changed = start(shop, "webhook-order", token, {**ORDER, "email": "bob@example.com"}, key)
    assert changed.status == 409
    assert changed.json()["error"] == (
        f"the Idempotency-Key 'order-o-1001' already started run {run_id} with another input; "
        "send a new key to start another run")
    assert shop.project.snapshots() == before
    # 12.0 for 12 is another JSON body, though Python's == says they are equal
    floats = {**ORDER, "items": [ORDER["items"][0], {**ORDER["items"][1], "price": 12.0}]}
    assert start(shop, "webhook-order", token, floats, key).status == 409
    assert shop.project.snapshots() == before
    bad_key = start(shop, "webhook-order", token, headers={"Idempotency-Key": "x" * 256})
    assert bad_key.status == 400 and "Idempotency-Key" in bad_key.json()["error"]


def _cost(monkeypatch: pytest.MonkeyPatch, server: Server, workflow: str,
          token: str) -> tuple[Response, dict[str, int]]:
    """A start request and the work answering it took: token-file reads, hash comparisons."""
    done = {"reads": 0, "compares": 0}
    read, compare = _tokens._read, hmac.compare_digest

    def counting_read(store: FileStore) -> Any:
        done["reads"] += 1
        return read(store)

    def counting_compare(a: Any, b: Any) -> bool:
        done["compares"] += 1
        return compare(a, b)

    with monkeypatch.context() as patch:
        patch.setattr(_tokens, "_read", counting_read)
        patch.setattr(hmac, "compare_digest", counting_compare)
        reply = start(server, workflow, token)
    return reply, done


def test_bad_revoked_and_foreign_tokens_are_indistinguishable(
        shop: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    project = shop.project
    order_token = make_token(project, "webhook-order", "shop")
    gated_token = make_token(project, "gated")
    revoked = make_token(project, "webhook-order", "old")
    assert project.run("token", "revoke", "old").code == 0
    before = project.snapshots()
    cases = {
        "random": ("webhook-order", "wfr_" + "A" * 43),
        "revoked": ("webhook-order", revoked),
        "other workflow's": ("webhook-order", gated_token),
        "unknown workflow": ("no-such-workflow", order_token),
        "unknown workflow, random token": ("no-such-workflow", "wfr_" + "B" * 43),
        "a path": ("..%2Fetc", order_token),
    }
    answers = {}
    for case, (workflow, token) in cases.items():
        reply, cost = _cost(monkeypatch, shop, workflow, token)
        assert reply.status == 404, (case, reply.text)
        answers[case] = (reply.body, reply.headers.get("Content-Type"),
                         reply.headers.get("WWW-Authenticate"), tuple(sorted(cost.items())))
    assert answers["random"][0] == b'{"error": "not found"}\n'
    assert dict(answers["random"][3]) == {"reads": 1, "compares": 4}  # 3 stored hashes, 1 workflow
    assert len(set(answers.values())) == 1, answers
    for header in (None, "", "Bearer", "Bearer ", "Basic d2Zy", f"Bearer {order_token} x",
                   "Bearer wfr_\u00e9"):
        sent = {} if header is None else {"Authorization": header}
        reply = post_json(f"{shop.base}/workflows/webhook-order/runs", ORDER,
                          {k: v.encode().decode("latin-1") for k, v in sent.items()})
        assert reply.status == 401, (header, reply.text)
        assert reply.headers["WWW-Authenticate"] == 'Bearer realm="wfrun"'
        assert "Authorization: Bearer TOKEN" in reply.json()["error"]
    assert project.snapshots() == before
    assert start(shop, "webhook-order", order_token).status == 202  # the real one works


def test_a_revoked_token_stops_working(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order", "shop")
    assert start(shop, "webhook-order", token).status == 202
    out = shop.project.run("token", "revoke", "shop")
    assert out.code == 0
    assert out.stdout == ("Token 'shop' (workflow webhook-order) is revoked: requests with it "
                          "now get 404.\n")
    assert start(shop, "webhook-order", token).status == 404
    again = shop.project.run("token", "revoke", "shop")
    assert again.code == 0 and "was already revoked at" in again.stdout
    unknown = shop.project.run("token", "revoke", "nope")
    assert unknown.code == 4
    assert unknown.stderr == "error: no token named 'nope'; 'wfrun token list' shows them\n"


def test_token_list_shows_names_never_tokens(shop: Server) -> None:
    project = shop.project
    first = make_token(project, "webhook-order")
    second = make_token(project, "gated", "ci")
    assert project.run("token", "revoke", "ci").code == 0
    listed = project.json("token", "list")
    assert [(t["name"], t["workflow"], t["revoked"]) for t in listed] == [
        ("webhook-order-1", "webhook-order", False), ("ci", "gated", True)]
    assert set(listed[0]) == {"name", "workflow", "created_at", "revoked", "revoked_at"}
    human = project.run("token", "list")
    assert human.code == 0
    lines = human.stdout.splitlines()
    assert lines[0].split() == ["name", "workflow", "created", "revoked"]
    assert lines[1].split()[:2] == ["webhook-order-1", "webhook-order"]
    assert lines[1].split()[3] == "no" and lines[2].split()[3] == listed[1]["revoked_at"]
    for text in (json.dumps(listed), human.stdout, human.stderr):
        assert first not in text and second not in text
    taken = project.run("token", "create", "--workflow", "gated", "--name", "ci")
    assert taken.code == 3 and "a token named 'ci' exists already" in taken.stderr
    assert project.run("token", "create", "--workflow", "nope").code == 4
    assert [t["name"] for t in project.json("token", "list")] == ["webhook-order-1", "ci"]


def test_the_token_file_is_private_and_holds_only_hashes(shop: Server) -> None:
    project = shop.project
    token = make_token(project, "webhook-order", "shop")
    path = project.state / "keys" / "tokens.json"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    for name, content in project.snapshots().items():
        assert token.encode() not in content, name
        assert token[4:].encode() not in content, name
    [record] = json.loads(path.read_text())["tokens"]
    import hashlib

    assert record["hash"] == "sha256:" + hashlib.sha256(token.encode()).hexdigest()
    assert record["name"] == "shop" and record["workflow"] == "webhook-order"
    assert project.run("doctor").code == 0


def test_a_body_over_the_limit_gets_413(shop: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    token = make_token(shop.project, "webhook-order")
    monkeypatch.setenv("WFRUN_MAX_PAYLOAD", "200")
    big = {**ORDER, "note": "x" * 300}
    reply = start(shop, "webhook-order", token, big)
    assert reply.status == 413 and "200 byte limit" in reply.json()["error"]
    assert runs(shop.project) == []


def test_only_post_starts(shop: Server) -> None:
    token = make_token(shop.project, "webhook-order")
    url = f"{shop.base}/workflows/webhook-order/runs"
    for method in ("GET", "PUT", "DELETE"):
        reply = http(url, method, headers={"Authorization": f"Bearer {token}"})
        assert reply.status == 405 and reply.headers["Allow"] == "POST, OPTIONS"
    assert http(url, "OPTIONS").status == 204
    assert http(f"{shop.base}/workflows/webhook-order/runs/x", "POST").status == 404
    assert runs(shop.project) == []


def test_the_server_answers_a_start_from_a_second_process_token(shop: Server) -> None:
    """A token made by another process (a real `wfrun token create`) works at once."""
    out = shop.project.cli("token", "create", "--workflow", "webhook-order", "--json")
    assert out.code == 0, out.stderr
    made = json.loads(out.stdout)
    assert made["url"].endswith("/workflows/webhook-order/runs") and made["name"] == "webhook-order-1"
    reply = start(shop, "webhook-order", made["token"], headers={"Idempotency-Key": "k1"})
    assert reply.status == 202
    deadline = time.monotonic() + 10
    while shop.load(reply.json()["run_id"]).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert shop.load(reply.json()["run_id"]).status == "completed"
