"""Issue 21.3: `POST /runs/RUN/events/NAME?token=...`, the URL of `ctx.flow.event_url(name)`
(SPEC §3, §7): the token is scoped to run and event name and works for the life of the run;
a GET describes the URL and never sends; bad or foreign tokens get the same 404; a finished
run 409; data failing the waiting step's schema 422 with nothing stored; 202 once stored.

Runs are made with the real CLI; requests go to an in-process `wfrun serve` over real HTTP.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import REPO, Project

from .conftest import Server, http, post_json, running_server

WAITER = """
    name: waiter
    steps:
      - id: hello
      - id: wait
      - id: after
"""
WAITER_PY = """
def hello(ctx):
    return {"url": ctx.flow.event_url("paid"), "other": ctx.flow.event_url("refunded")}

def wait(ctx):
    ctx.flow.wait_for_event("paid", schema={
        "type": "object", "required": ["amount"],
        "properties": {"amount": {"type": "integer"}, "note": {"type": "string"}}})
    return {"waiting": True}

def after(ctx):
    return {"paid": ctx.steps["wait"].resume_data}
"""


@pytest.fixture
def shop(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """The payment-order example, `waiter`, and a server on a free port."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"payment-order{suffix}", project.workflows)
    project.workflow("waiter", WAITER, WAITER_PY)
    with running_server(project, monkeypatch) as running:
        yield running


def urls(server: Server, run_id: str) -> dict[str, Any]:
    output: dict[str, Any] = server.load(run_id).steps["hello"].output
    return output


def test_the_event_url_resumes_the_waiting_step(shop: Server) -> None:
    run_id = shop.start("waiter")["run_id"]
    url = urls(shop, run_id)["url"]
    assert url.startswith(f"{shop.base}/runs/{run_id}/events/paid?token=")
    assert shop.load(run_id).steps["wait"].status == "suspended"
    before = shop.project.snapshots()
    described = http(url)  # a GET never sends
    assert described.status == 200
    about = described.json()
    assert (about["run_id"], about["event"], about["verb"], about["waiting"]) == (
        run_id, "paid", "event", ["wait"])
    assert about["schema"]["required"] == ["amount"]
    assert "a GET changes nothing" in about["how"]
    assert http(url, "HEAD").status == 200
    assert shop.project.snapshots() == before
    sent = http(url, "NOTIFY", json.dumps({"amount": 42}).encode(),
                {"Content-Type": "application/json"})  # any method but GET and HEAD sends
    assert sent.status == 202
    assert sent.json() == {"status": "accepted", "run_id": run_id, "event": "paid",
                           "step": "wait", "kept": False}
    run = shop.wait_until_settled(run_id)
    assert run.status == "completed"
    assert run.output == {"paid": {"amount": 42}}
    history = shop.project.json("show", run_id)["history"]
    [taken] = [e for e in history if e["type"] == "resumed" and e["step"] == "wait"]
    assert (taken["event"], taken["source"]) == ("paid", "http")
    # The token works for the life of the run: a finished run takes no events (409).
    again = post_json(url, {"amount": 1})
    assert again.status == 409
    assert f"run {run_id} is completed" in again.json()["error"]
    assert http(url).status == 409


def test_an_event_posted_before_the_wait_is_kept_then_taken(shop: Server) -> None:
    doc = shop.start("payment-order", '{"order": "o-9", "amount": 5}')
    run_id = doc["run_id"]
    url = doc["steps"]["invoice"]["output"]["callback_url"]
    assert http(url).json()["waiting"] == []
    sent = post_json(url, {"amount": 5, "reference": "psp-1"})
    assert sent.status == 202
    assert sent.json() == {"status": "accepted", "run_id": run_id, "event": "payment-received",
                           "step": None, "kept": True}
    run = shop.load(run_id)
    assert [(e["kind"], e["name"], e["data"], e["source"]) for e in run.inbox] == [
        ("event", "payment-received", {"amount": 5, "reference": "psp-1"}, "http")]
    assert run.inbox[0]["request"]["method"] == "POST"
    assert "token" not in run.inbox[0]["request"]["query"]
    assert http(url).json()["kept"] == 1
    done = shop.project.json("resume", run_id, "--data", '{"parcel": "p-9"}')
    assert done["status"] == "completed"
    assert done["output"]["reference"] == "psp-1"


def test_no_body_takes_the_query_as_data_coerced_to_the_schema(shop: Server) -> None:
    run_id = shop.start("waiter")["run_id"]
    sent = http(urls(shop, run_id)["url"] + "&amount=7&note=cash&action=x", "POST")
    assert sent.status == 202, sent.text
    assert shop.wait_until_settled(run_id).output == {  # `action` is data here: no actions
        "paid": {"amount": 7, "note": "cash", "action": "x"}}


@pytest.mark.parametrize("how", ["query", "form"])
def test_text_sent_before_the_wait_is_typed_by_the_schema_of_the_step_that_takes_it(
        shop: Server, how: str) -> None:
    doc = shop.start("payment-order", '{"order": "o-9", "amount": 5}')
    run_id = doc["run_id"]
    url = doc["steps"]["invoice"]["output"]["callback_url"]
    fields = "amount=5&reference=psp-1"
    sent = http(url + "&" + fields, "POST") if how == "query" else http(
        url, "POST", fields.encode(), {"Content-Type": "application/x-www-form-urlencoded"})
    assert sent.status == 202 and sent.json()["kept"] is True, sent.text
    done = shop.project.json("resume", run_id, "--data", '{"parcel": "p-9"}')
    assert done["status"] == "completed", done  # "5" became 5 when the wait began
    assert done["output"]["reference"] == "psp-1"
    paid = shop.load(run_id).steps["await-payment"].resume_data
    assert paid == {"amount": 5, "reference": "psp-1"}


def test_data_failing_the_schema_gets_422_and_nothing_is_stored(shop: Server) -> None:
    run_id = shop.start("waiter")["run_id"]
    url = urls(shop, run_id)["url"]
    before = shop.project.snapshots()
    refused = post_json(url, {"amount": "lots"})
    assert refused.status == 422
    body = refused.json()
    assert body["error"].startswith("data of event 'paid' (step 'wait' waits for it) is not valid")
    assert body["errors"]
    assert shop.project.snapshots() == before
    unreadable = http(url, "POST", b"{not json", {"Content-Type": "application/json"})
    assert unreadable.status == 400
    assert shop.project.snapshots() == before


def test_bad_foreign_and_unknown_tokens_get_the_same_404(shop: Server) -> None:
    first = shop.start("waiter")["run_id"]
    second = shop.start("waiter")["run_id"]
    url = urls(shop, first)["url"]
    token = url.split("token=")[1]
    other_event = urls(shop, first)["other"].split("token=")[1]  # same run, event 'refunded'
    other_run = urls(shop, second)["url"].split("token=")[1]  # same event, another run
    base = f"{shop.base}/runs/{first}/events/paid"
    bad = token[:-1] + ("x" if token[-1] != "x" else "y")  # (one in 64 tokens ends in 'x')
    before = shop.project.snapshots()
    for target in (
        f"{base}?token={bad}",  # bad
        f"{base}",  # none
        f"{base}?token={other_event}",  # another event's
        f"{base}?token={other_run}",  # another run's
        f"{shop.base}/runs/{first}/events/refunded?token={token}",  # this token, other name
        f"{shop.base}/runs/no-such-run/events/paid?token={token}",  # unknown run
        f"{shop.base}/runs/bad%20id/events/paid?token={token}",  # invalid run id
        f"{shop.base}/runs/{first}/events/bad%20name?token={token}",  # invalid name
    ):
        for method in ("GET", "POST"):
            answer = http(target, method, b"{}" if method == "POST" else None,
                          {"Content-Type": "application/json"})
            assert (answer.status, answer.json()) == (404, {"error": "not found"}), target
    assert shop.project.snapshots() == before
    # the other event's URL is a real one: it keeps 'refunded' in the inbox (no step waits)
    kept = post_json(urls(shop, first)["other"], {"why": "test"})
    assert kept.status == 202 and kept.json()["kept"] is True
    assert shop.load(first).steps["wait"].status == "suspended"


def test_a_run_pruned_after_its_url_was_made_is_404(shop: Server, project: Project) -> None:
    run_id = shop.start("waiter")["run_id"]
    url = urls(shop, run_id)["url"]
    project.json("cancel", run_id)
    assert post_json(url, {"amount": 1}).status == 409
    assert project.run("prune", "--older-than", "0s").code == 0  # the run is gone
    answer = post_json(url, {"amount": 1})
    assert (answer.status, answer.json()) == (404, {"error": "not found"})


def test_a_token_given_twice_is_refused_and_sends_nothing(shop: Server) -> None:
    run_id = shop.start("waiter")["run_id"]
    url = urls(shop, run_id)["url"]
    token = url.split("token=")[1]
    before = shop.project.snapshots()
    for target in (f"{url}&token={token}", f"{url}&token=other"):
        for method in ("GET", "POST"):
            answer = http(target, method, b'{"amount": 5}' if method == "POST" else None,
                          {"Content-Type": "application/json"})
            assert answer.status == 400, answer.text
            assert answer.json() == {"error": "the token parameter was given more than once "
                                     "in the URL; nothing was changed: give token= once"}
    assert shop.project.snapshots() == before
    assert shop.load(run_id).steps["wait"].status == "suspended"


PAYS = """
    name: pays
    steps:
      - id: gate
        wait: true
      - id: wait
    """
PAYS_PY = """
def wait(ctx):
    ctx.flow.wait_for_event("paid", schema={
        "type": "object", "required": ["amount"], "properties": {"amount": {"type": "integer"}}})
    return {"waiting": True}
"""
SHIPS = """
    name: ships
    steps:
      - id: hello
      - id: sub
        workflow: pays
      - id: after
    """
SHIPS_PY = """
def hello(ctx):
    return {"url": ctx.flow.event_url("paid")}

def after(ctx):
    return {"paid": ctx.steps["sub"].output}
"""


def test_a_runs_event_url_reaches_the_child_run_that_waits_and_it_goes_on(shop: Server) -> None:
    shop.project.workflow("pays", PAYS, PAYS_PY)
    shop.project.workflow("ships", SHIPS, SHIPS_PY)
    run_id = shop.start("ships")["run_id"]
    url = urls(shop, run_id)["url"]  # the parent's URL: the sender knows only that run
    assert http(url).json()["waiting"] == []  # the child waits at its gate, not for the event
    shop.project.json("resume", run_id, "--step", "sub/gate")
    about = http(url).json()
    assert about["waiting"] == ["sub/wait"] and about["schema"]["required"] == ["amount"]
    assert "Step 'sub/wait' waits for it" in about["how"]
    # no body: the query is the data, typed by the child's wait's schema
    sent = http(url + "&amount=7", "POST")
    assert sent.status == 202, sent.json()
    assert sent.json() == {"status": "accepted", "run_id": run_id, "event": "paid",
                           "step": "sub/wait", "kept": False}
    child = shop.wait_until_settled(f"{run_id}--sub")  # continued by the server: the child
    assert child.status == "completed" and child.steps["wait"].resume_data == {"amount": 7}
    deadline = time.monotonic() + 10  # ... and its parent, told by the child when it ended
    while shop.load(run_id).status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    run = shop.wait_until_settled(run_id)
    assert run.status == "completed" and run.output == {"paid": {"waiting": True}}, run.status
