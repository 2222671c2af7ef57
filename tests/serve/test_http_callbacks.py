"""Issue 6: `wfrun serve` answers resume and cancel URLs over real HTTP (SPEC §7)."""

from __future__ import annotations

import json
import socket
import time
from urllib.parse import urlencode, urlsplit

import pytest

from .conftest import Server, http, post_json


def _resume_url(doc: dict, index: int = 0) -> str:
    entries = doc["suspended"] or doc["waiting"]
    url: str = entries[index]["resume_url"]
    return url


def _cancel_url(doc: dict) -> str:
    url: str = (doc["suspended"] or doc["waiting"])[0]["cancel_url"]
    return url


def test_resume_with_json_and_action_completes_the_run_in_the_background(server: Server) -> None:
    doc = server.start("approval")
    url = _resume_url(doc)
    assert url.startswith(server.base + f"/runs/{doc['run_id']}/steps/approve/resume?token=")
    reply = post_json(url + "&action=approved", {"approved": True, "reviewer": "bob"})
    assert reply.status == 202, reply.text
    assert reply.json()["accepted"] is True and reply.json()["action"] == "approved"
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"
    assert run.output == {"decision": "approved", "data": {"approved": True, "reviewer": "bob"}}
    assert run.steps["approve"].resume_data == {"approved": True, "reviewer": "bob"}
    assert run.steps["pay"].status == "completed" and run.steps["reject"].status == "skipped"
    history = server.project.json("show", doc["run_id"])["steps"]
    assert history["approve"]["action"] == "approved"
    events = [e for e in server.project.json("show", doc["run_id"])["history"]
              if e["type"] == "resumed"]
    assert events[0]["source"] == "http"


def test_a_used_token_gets_409_and_the_first_data_is_kept(server: Server) -> None:
    doc = server.start("approval")
    url = _resume_url(doc)
    assert post_json(url + "&action=rejected", {"approved": False}).status == 202
    server.wait_until_settled(doc["run_id"])
    again = post_json(url + "&action=approved", {"approved": True})
    assert again.status == 409
    assert "already resumed" in again.json()["error"]
    run = server.load(doc["run_id"])
    assert run.steps["approve"].resume_data == {"approved": False}
    # its cancel link died with the pause too
    assert http(_cancel_url(doc), "POST").status == 409


def test_resume_with_a_form_body_becomes_an_object(server: Server) -> None:
    doc = server.start("suspend-code")
    body = urlencode([("reviewer", "bob"), ("tag", "a"), ("tag", "b"), ("empty", "")]).encode()
    reply = http(_resume_url(doc), "PUT", body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 202, reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"
    assert run.output == {"got": {"reviewer": "bob", "tag": ["a", "b"], "empty": ""},
                          "action": None}


def test_a_form_body_is_typed_as_the_resume_schema_asks_like_query_parameters(
        server: Server) -> None:
    doc = server.start("approval")
    body = urlencode({"approved": "true", "amount": "12.5", "reviewer": "42"}).encode()
    reply = http(_resume_url(doc) + "&action=approved", "POST", body,
                 {"Content-Type": "application/x-www-form-urlencoded"})
    assert reply.status == 202, reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"  # the schema's boolean was met: "true" became true
    assert run.steps["approve"].output == {"approved": True, "amount": 12.5, "reviewer": "42"}


def test_a_bodiless_post_resumes_and_a_get_only_describes_the_link(server: Server) -> None:
    doc = server.start("suspend-code")
    before = server.project.snapshots()
    described = http(_resume_url(doc))  # no Accept: text/html: a JSON description
    assert described.status == 200
    assert described.json()["verb"] == "resume" and described.json()["how"].startswith("POST")
    assert server.project.snapshots() == before  # a GET never changes a run
    reply = http(_resume_url(doc), "POST")
    assert reply.status == 202
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed" and run.output == {"got": None, "action": None}


def test_callback_into_a_rerun_sets_callback_request(server: Server) -> None:
    doc = server.start("callback")
    assert doc["status"] == "waiting" and doc["waiting"][0]["kind"] == "rerun"
    reply = post_json(_resume_url(doc) + "&job=7&job=8&mode=fast",
                      {"status": "DONE", "rows": 3}, {"X-Signature": "abc123"})
    assert reply.status == 202, reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed", run.error
    request = run.output["request"]
    assert request["method"] == "POST" and request["source"] == "http"
    assert request["body"] == {"status": "DONE", "rows": 3}
    assert request["query"] == {"job": ["7", "8"], "mode": "fast"}  # the token is not kept
    assert request["headers"]["x-signature"] == "abc123"
    assert request["headers"]["content-type"] == "application/json"
    assert run.output["context"] == {"n": 1}
    assert run.steps["job"].runs == 2 and run.steps["job"].resume_data is None


def test_callback_data_is_checked_against_the_rerun_steps_resume_schema(server: Server) -> None:
    doc = server.start("callback")
    before = server.project.snapshots()
    reply = post_json(_resume_url(doc), {"rows": 3})
    assert reply.status == 422
    assert reply.json()["errors"] == [{"path": "$.status", "message": '"status" (text) is missing'}]
    assert server.project.snapshots() == before


def test_cancel_url_cancels_and_a_browser_gets_a_confirmation_page_first(server: Server) -> None:
    doc = server.start("approval")
    page = http(_cancel_url(doc), headers={"Accept": "text/html,application/xhtml+xml"})
    assert page.status == 200 and "Cancel the run" in page.text
    assert server.load(doc["run_id"]).status == "suspended"  # a GET from a browser asks first
    reply = http(_cancel_url(doc), "POST", b'{"reason": "duplicate"}',
                 {"Content-Type": "application/json"})
    assert reply.status == 200 and reply.json()["status"] == "cancelled"
    shown = server.project.json("show", doc["run_id"])
    assert shown["status"] == "cancelled"
    assert [e["reason"] for e in shown["history"] if e["type"] == "cancelled"] == ["duplicate"]
    assert http(_cancel_url(doc), "POST").status == 409
    assert post_json(_resume_url(doc), {"approved": True}).status == 409


def test_wrong_foreign_and_unknown_tokens_all_get_the_same_404(server: Server) -> None:
    first, second = server.start("approval"), server.start("approval")
    url = _resume_url(first)
    token = url.split("token=")[1]
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    path = urlsplit(url).path
    foreign = server.base + path.replace(first["run_id"], second["run_id"]) + "?token=" + token
    cancel_token = _cancel_url(first).split("token=")[1]
    cases = [
        url.replace(token, flipped),                               # wrong token
        foreign,                                                   # another run's token
        server.base + path,                                        # no token
        server.base + path + "?token=" + cancel_token,             # the cancel token, to resume
        server.base + path.replace("/approve/", "/pay/") + "?token=" + token,  # another step
        server.base + path.replace(first["run_id"], "no-such-run") + "?token=" + token,
        server.base + "/runs/..%2F..%2Fetc/steps/x/resume?token=" + token,
    ]
    before = server.project.snapshots()
    bodies = set()
    for case in cases:
        reply = post_json(case, {"approved": True})
        assert reply.status == 404, case
        bodies.add(reply.body)
    assert bodies == {b'{"error": "not found"}\n'}  # no oracle: every miss looks the same
    assert server.project.snapshots() == before
    assert post_json(url + "&action=approved", {"approved": True}).status == 202  # the real one


def test_invalid_data_gets_422_with_field_errors_and_changes_nothing(server: Server) -> None:
    doc = server.start("approval")
    before = server.project.snapshots()
    reply = post_json(_resume_url(doc), {"approved": "yes", "amount": "x"})
    assert reply.status == 422
    body = reply.json()
    assert {e["path"] for e in body["errors"]} == {"$.approved", "$.amount"}
    assert body["error"].startswith("resume data for step 'approve' is not valid: ")
    assert '"approved" must be true or false, not "yes"' in body["error"]
    bad_json = http(_resume_url(doc), "POST", b'{"approved": tru', {"Content-Type": "application/json"})
    assert bad_json.status == 400 and "not valid JSON" in bad_json.json()["error"]
    assert server.project.snapshots() == before
    assert server.load(doc["run_id"]).status == "suspended"


def test_a_body_over_the_cap_gets_413(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_MAX_PAYLOAD", "2000")
    doc = server.start("approval")
    before = server.project.snapshots()
    reply = post_json(_resume_url(doc), {"approved": True, "reviewer": "x" * 5000})
    assert reply.status == 413 and "2000 byte limit" in reply.json()["error"]
    assert server.project.snapshots() == before


def test_413_is_sent_before_the_body_is_read(server: Server) -> None:
    doc = server.start("approval")
    path = _resume_url(doc)[len(server.base):]
    with socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     f"Content-Length: {50 * 1024 * 1024}\r\n\r\n".encode())
        sock.sendall(b'{"approved": ')  # 50 MiB announced, a few bytes sent: no wait for more
        head = sock.recv(200).decode()
    assert head.startswith("HTTP/1.0 413")
    assert server.load(doc["run_id"]).status == "suspended"


def test_chunked_bodies_are_refused(server: Server) -> None:
    doc = server.start("approval")
    path = _resume_url(doc)[len(server.base):]
    with socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as sock:
        sock.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "5\r\nhello\r\n0\r\n\r\n".encode())
        head = sock.recv(200).decode()
    assert head.startswith("HTTP/1.0 411")
    assert server.load(doc["run_id"]).status == "suspended"


@pytest.mark.parametrize("agent", [
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mattermost-Bot/1.1",
    "Rocket.Chat/6.5.0",
    "Synapse/1.98.0",
    "Google-Safety",
    "Signal-Android/6.40.4",
    "curl/8.5.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0",
])
def test_a_get_never_uses_a_link_whatever_the_user_agent(server: Server, agent: str) -> None:
    doc = server.start("approval")
    before = server.project.snapshots()
    for url in (_resume_url(doc) + "&action=approved", _cancel_url(doc)):
        for method in ("GET", "HEAD"):
            reply = http(url, method, headers={"User-Agent": agent, "Accept": "*/*"})
            assert reply.status == 200, (method, url, reply.text)
    assert server.project.snapshots() == before
    reply = post_json(_resume_url(doc) + "&action=approved", {"approved": True},
                      {"User-Agent": agent})  # any other method acts, whoever sends it
    assert reply.status == 202, reply.text
    assert server.wait_until_settled(doc["run_id"]).status == "completed"


def test_head_never_resumes_or_cancels(server: Server) -> None:
    doc = server.start("approval")
    before = server.project.snapshots()
    assert http(_resume_url(doc), "HEAD").status == 200
    assert http(_cancel_url(doc), "HEAD").status == 200
    assert http(_resume_url(doc).replace("token=", "token=x"), "HEAD").status == 404
    assert server.project.snapshots() == before


@pytest.mark.parametrize("method", ["OPTIONS", "PROPFIND", "NOTIFY"])
def test_any_method_but_get_and_head_acts_options_and_unknown_ones_included(
        server: Server, method: str) -> None:
    doc, other = server.start("approval"), server.start("approval")
    body = json.dumps({"approved": True}).encode()
    foreign = http(_resume_url(doc).replace("token=", "token=x"), method, body,
                   {"Content-Type": "application/json"})
    assert foreign.status == 404  # the same no-detail answer as a POST, not 501
    reply = http(_resume_url(doc) + "&action=approved", method, body,
                 {"Content-Type": "application/json"})
    assert reply.status == 202, reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed" and run.steps["approve"].output == {"approved": True}
    assert http(_cancel_url(other), method).status == 200
    assert server.wait_until_settled(other["run_id"]).status == "cancelled"


def test_a_browser_get_shows_the_approval_page_escaped_and_locked_down(server: Server) -> None:
    doc = server.start("approval")
    page = http(_resume_url(doc), headers={"Accept": "text/html"})
    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    policy = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "script-src" not in policy
    assert page.headers["Referrer-Policy"] == "no-referrer"
    html = page.text
    # `approved` is what the Approve button says: no checkbox repeats it
    assert 'name="field:approved"' not in html
    assert '<select id="f-level" name="field:level">' in html and ">high</option>" in html
    assert 'type="number"' in html and 'type="text"' in html
    assert "Who decided" in html
    assert 'value="approved">Approve</button>' in html and 'value="rejected">Reject</button>' in html
    assert html.count("<button") == 2
    assert "<script" not in html and "http://" not in html and "https://" not in html
    assert server.load(doc["run_id"]).status == "suspended"  # showing the page resumes nothing


def test_the_approval_page_escapes_suspend_data(server: Server) -> None:
    doc = server.start("suspend-code")
    html = http(_resume_url(doc), headers={"Accept": "text/html"}).text
    assert "&lt;b&gt;report.pdf&lt;/b&gt;" in html and "<b>report.pdf" not in html
    assert 'name="_wfrun_json"' in html  # no resume_schema: one optional JSON box


def test_submitting_the_approval_form_resumes_with_typed_data(server: Server) -> None:
    doc = server.start("approval")
    form = urlencode({"_wfrun_form": "approval", "field:reviewer": "eve",
                      "field:level": "1", "field:amount": "12.5", "_wfrun_action": "rejected"})
    reply = http(_resume_url(doc), "POST", form.encode(),
                 {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert reply.status == 202 and "resumed with action rejected" in reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["approve"].resume_data == {"approved": False, "reviewer": "eve",
                                                "level": "high", "amount": 12.5}
    assert run.output["decision"] == "rejected" and run.steps["pay"].status == "skipped"


def test_an_invalid_form_shows_the_page_again_with_errors(server: Server) -> None:
    doc = server.start("approval")
    before = server.project.snapshots()
    form = urlencode({"_wfrun_form": "approval", "field:amount": "lots",
                      "_wfrun_action": "approved"})
    reply = http(_resume_url(doc), "POST", form.encode(),
                 {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert reply.status == 422
    assert 'id="errors"' in reply.text and "amount: enter a number" in reply.text
    assert server.project.snapshots() == before


def test_a_crash_between_accepting_and_continuing_is_recovered_by_tick(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(server.httpd, "continue_later", lambda run_id: None)  # the worker never runs
    monkeypatch.setattr(server.httpd.callbacks, "continue_later", lambda run_id: None)
    doc = server.start("approval")
    assert post_json(_resume_url(doc) + "&action=approved", {"approved": True}).status == 202
    run = server.load(doc["run_id"])
    assert run.status == "running"  # recorded durably, nothing executed yet
    assert run.steps["approve"].resume_data == {"approved": True}
    assert run.steps["pay"].status == "pending"
    tick = server.project.json("tick")
    assert [(a["run_id"], a["reason"], a["status"]) for a in tick["advanced"]] == [
        (doc["run_id"], "recovered", "completed")]
    run = server.load(doc["run_id"])
    assert run.output == {"decision": "approved", "data": {"approved": True}}
    assert run.steps["pay"].runs == 1


def test_a_slow_client_does_not_block_others(server: Server) -> None:
    doc = server.start("approval")
    with socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as slow:
        slow.sendall(b"POST /runs/x/steps/y/resume HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
        started = time.monotonic()
        reply = post_json(_resume_url(doc) + "&action=approved", {"approved": True})
        assert reply.status == 202 and time.monotonic() - started < 2


def test_unknown_paths_are_404_and_healthz_answers(server: Server) -> None:
    assert http(server.base + "/").status == 404
    assert http(server.base + "/runs/x/steps/y/approve?token=z").status == 404
    assert json.loads(http(server.base + "/healthz").body) == {"ok": True}


ASKING = """
    name: asking
    steps:
      - id: interview
"""
ASKING_PY = """
def interview(ctx):
    name = ctx.flow.ask(data={"question": "name?"},
                        schema={"type": "object", "required": ["name"]})
    return {"hello": name["name"], "runs": ctx.run.runs}
"""


def test_a_resume_url_answers_an_ask_and_checks_the_asks_schema(server: Server) -> None:
    server.project.workflow("asking", ASKING, ASKING_PY)
    doc = server.start("asking")
    url = _resume_url(doc)
    assert post_json(url, {"nom": "ann"}).status == 422  # the ask's schema wants "name"
    assert server.load(doc["run_id"]).steps["interview"].status == "suspended"
    assert http(url, headers={"Accept": "text/html"}).status == 200  # the approval page
    assert post_json(url, {"name": "ann"}).status == 202
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed", run.status
    assert run.steps["interview"].output == {"hello": "ann", "runs": 2}  # executed again
    assert run.steps["interview"].answers == [{"name": "ann"}]


def test_links_of_a_run_cancelled_from_the_cli_answer_409_not_404(server: Server) -> None:
    doc = server.start("approval")
    assert server.project.run("cancel", doc["run_id"]).code == 0
    assert http(_cancel_url(doc), "POST").status == 409  # a real link whose pause has ended
    assert post_json(_resume_url(doc), {"approved": True}).status == 409
