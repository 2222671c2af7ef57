"""Issues 17 and 18, SPEC §7: a GET describes a link and never uses it; a body-less request
takes its query parameters as data; the approval page offers the step's own actions."""

from __future__ import annotations

import json
from urllib.parse import urlencode

import pytest

from .conftest import Server, http, post_json

BRANCHING = """
    name: branching
    description: Pick the road <b>A</b> or B.
    steps:
      - id: start
      - id: decide
        wait: true
        label: road-choice
        resume_schema:
          type: object
          required: [note]
          properties: {note: {type: string, title: Why}}
      - id: path-a
        needs: [decide]
        when: {decide: choose-a}
      - id: path-b
        needs: [decide]
        when: {decide: choose-b}
"""
BRANCHING_PY = """
def start(ctx):
    return {"prepared": "<i>both roads</i>"}

def path_a(ctx):
    return {"took": "a"}

def path_b(ctx):
    return {"took": "b"}
"""
TYPED = """
    name: typed
    steps:
      - id: review
        wait: true
        resume_schema:
          type: object
          required: [approved]
          properties:
            approved: {type: boolean}
            amount: {type: integer}
            ratio: {type: number}
            code: {type: string}
            tags: {type: array, items: {type: integer}}
"""


def _links(doc: dict) -> tuple[str, str]:
    entry = (doc["suspended"] or doc["waiting"])[0]
    return entry["resume_url"], entry["cancel_url"]


def test_a_get_describes_a_resume_link_as_json_and_changes_nothing(server: Server) -> None:
    doc = server.start("approval")
    resume, _ = _links(doc)
    before = server.project.snapshots()
    reply = http(resume + "&action=approved&approved=true", headers={"Accept": "application/json"})
    assert reply.status == 200 and reply.headers["Content-Type"] == "application/json"
    body = reply.json()
    assert {k: body[k] for k in ("run_id", "step", "verb", "actions")} == {
        "run_id": doc["run_id"], "step": "approve", "verb": "resume",
        "actions": ["approved", "rejected"]}
    assert body["resume_schema"]["required"] == ["approved"]
    assert body["how"].startswith("POST this URL") and "action=" in body["how"]
    assert http(resume, "HEAD").status == 200
    assert server.project.snapshots() == before
    assert server.load(doc["run_id"]).status == "suspended"


BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(("accept", "page"), [
    (BROWSER, True),
    ("text/html", True),
    ("text/*", True),
    ("application/json, text/html", True),  # as welcome as JSON: the page
    ("application/json;q=0.5, text/html;q=0.6", True),
    (None, False),  # urllib sends none
    ("*/*", False),  # curl's default
    ("application/json", False),
    ("application/json, text/html;q=0", False),  # q=0: not acceptable (RFC 9110)
    ("text/html;q=0", False),
    ("text/html;q=0, */*", False),
    ("text/*;q=0.5, application/json", False),  # JSON preferred
    ("*/*;q=0.9, text/html;q=0.8", False),
])
def test_the_page_goes_to_a_client_that_accepts_html_at_least_as_much_as_json(
        server: Server, accept: str | None, page: bool) -> None:
    """SPEC §7: the approval page for a client that accepts text/html; the JSON description
    for any other, whichever the link's error or description is."""
    doc = server.start("approval")
    resume, cancel = _links(doc)
    headers = {} if accept is None else {"Accept": accept}
    for url in (resume, cancel):
        reply = http(url, headers=headers)
        assert reply.status == 200
        kind = reply.headers["Content-Type"]
        assert kind.startswith("text/html" if page else "application/json"), (url, kind)
    if not page:
        assert http(resume, headers=headers).json()["verb"] == "resume"
    used = http(resume + "&action=approved&approved=true", "POST", headers=headers)
    assert used.status == 202
    server.wait_until_settled(doc["run_id"])
    refused = http(resume, headers=headers)  # 409: a page, or {"error"}
    assert refused.status == 409
    assert refused.headers["Content-Type"].startswith("text/html" if page else "application/json")


def test_a_get_describes_a_cancel_link_and_cancels_nothing(server: Server) -> None:
    doc = server.start("approval")
    _, cancel = _links(doc)
    before = server.project.snapshots()
    body = http(cancel).json()
    assert body["verb"] == "cancel" and body["run_id"] == doc["run_id"]
    assert body["how"].startswith("POST this URL to cancel run")
    assert http(cancel, "HEAD").status == 200
    assert server.project.snapshots() == before
    assert http(cancel, "DELETE").json()["status"] == "cancelled"  # another method acts


def test_a_get_on_a_rerun_link_describes_it_even_for_a_browser(server: Server) -> None:
    doc = server.start("callback")
    resume, _ = _links(doc)
    before = server.project.snapshots()
    page = http(resume, headers={"Accept": "text/html"})
    assert page.status == 200 and 'id="approval"' in page.text
    assert http(resume).json()["resume_schema"]["required"] == ["status"]
    assert server.project.snapshots() == before
    assert server.load(doc["run_id"]).steps["job"].runs == 1


def test_a_used_link_still_says_so_on_a_get(server: Server) -> None:
    doc = server.start("approval")
    resume, _ = _links(doc)
    assert post_json(resume + "&action=approved", {"approved": True}).status == 202
    server.wait_until_settled(doc["run_id"])
    reply = http(resume)
    assert reply.status == 409 and "already resumed" in reply.json()["error"]


def test_a_bodyless_post_takes_its_query_parameters_as_typed_data(server: Server) -> None:
    server.project.workflow("typed", TYPED, "")
    doc = server.start("typed")
    resume, _ = _links(doc)
    reply = http(resume + "&approved=true&amount=12&ratio=0.5&code=007&tags=1&tags=2&other=true",
                 "POST")
    assert reply.status == 202, reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["review"].resume_data == {
        "approved": True, "amount": 12, "ratio": 0.5, "code": "007", "tags": [1, 2],
        "other": "true"}
    events = [e for e in server.project.json("show", doc["run_id"])["history"]
              if e["type"] == "resumed"]
    assert len(events) == 1


def test_query_data_that_cannot_be_read_as_its_type_is_refused_as_it_is(server: Server) -> None:
    server.project.workflow("typed", TYPED, "")
    doc = server.start("typed")
    resume, _ = _links(doc)
    before = server.project.snapshots()
    reply = http(resume + "&approved=yes", "POST")
    assert reply.status == 422
    assert reply.json()["errors"][0]["path"] == "$.approved"
    assert server.project.snapshots() == before


def test_a_bodyless_post_with_action_and_data_in_the_query_completes_a_branch(
    server: Server
) -> None:
    doc = server.start("approval")
    resume, _ = _links(doc)
    reply = http(resume + "&action=approved&approved=true&reviewer=ann", "PUT")
    assert reply.status == 202, reply.text
    assert reply.json()["action"] == "approved"
    run = server.wait_until_settled(doc["run_id"])
    assert run.steps["approve"].resume_data == {"approved": True, "reviewer": "ann"}
    assert run.steps["pay"].status == "completed"


def test_the_page_offers_one_button_per_known_action_and_shows_what_is_asked(
    server: Server
) -> None:
    server.project.workflow("branching", BRANCHING, BRANCHING_PY)
    doc = server.start("branching", '{"customer": "<ann>"}')
    resume, _ = _links(doc)
    html = http(resume + "&note=prefilled", headers={"Accept": "text/html"}).text
    assert 'value="choose-a">Choose a</button>' in html
    assert 'value="choose-b">Choose b</button>' in html
    assert html.count("<button") == 2 and ">Approve<" not in html and ">Reject<" not in html
    assert "Pick the road &lt;b&gt;A&lt;/b&gt; or B." in html  # the workflow's description
    assert "&lt;ann&gt;" in html and "&lt;i&gt;both roads&lt;/i&gt;" in html  # input, outputs
    assert 'value="prefilled"' in html  # the form is pre-filled from the query
    assert "<dt>Label</dt><dd>road-choice</dd>" in html
    described = http(resume).json()
    assert described["actions"] == ["choose-a", "choose-b"] and described["label"] == "road-choice"
    form = urlencode({"_wfrun_form": "approval", "field:note": "a is shorter",
                      "_wfrun_action": "choose-b"})
    reply = http(resume, "POST", form.encode(),
                 {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert reply.status == 202 and "resumed with action choose-b" in reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"
    assert run.steps["decide"].action == "choose-b"
    assert run.steps["decide"].resume_data == {"note": "a is shorter"}
    assert run.steps["path-b"].status == "completed" and run.steps["path-a"].status == "skipped"


def test_a_step_with_no_known_actions_gets_a_single_submit(server: Server) -> None:
    doc = server.start("suspend-code")
    resume, _ = _links(doc)
    html = http(resume, headers={"Accept": "text/html"}).text
    assert html.count("<button") == 1 and 'id="submit">Submit</button>' in html
    assert "_wfrun_action" not in html
    form = urlencode({"_wfrun_form": "approval", "_wfrun_json": json.dumps({"ok": 1})})
    reply = http(resume, "POST", form.encode(),
                 {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert reply.status == 202 and "was resumed." in reply.text
    run = server.wait_until_settled(doc["run_id"])
    assert run.output == {"got": {"ok": 1}, "action": None}


def test_a_bodyless_post_without_data_is_told_what_the_step_needs(server: Server) -> None:
    doc = server.start("approval")
    resume, _ = _links(doc)
    before = server.project.snapshots()
    reply = http(resume + "&action=approved", "POST")
    assert reply.status == 422
    body = reply.json()
    assert body["error"] == ("resume data for step 'approve' is missing: this step needs data "
                             'with "approved" (true or false)')
    assert body["errors"][0]["path"] == "$"
    assert server.project.snapshots() == before


def test_a_parameter_of_one_value_given_twice_is_refused_and_changes_nothing(
    server: Server
) -> None:
    # `&action=a&action=b`: which one was meant cannot be known, so neither is taken; a
    # repeated token (the same twice, or another beside it) and a repeated cancel reason too
    doc = server.start("approval")
    resume, cancel = _links(doc)
    token = resume.split("token=")[1]
    before = server.project.snapshots()
    for url in (resume + "&action=approved&action=rejected",
                resume + "&action=approved&action=approved",
                resume + f"&token={token}&action=approved",
                resume + "&token=nope&action=approved",
                cancel + "&reason=late&reason=wrong"):
        name = "token" if url.count("token=") > 1 else "reason" if "reason=" in url else "action"
        for method, body in (("POST", b'{"approved": true}'), ("POST", b""), ("PUT", b""),
                             ("GET", b"")):
            reply = http(url, method, body or None, {"Content-Type": "application/json"})
            assert reply.status == 400, (url, reply.text)
            assert reply.json() == {"error": f"the {name} parameter was given more than once "
                                    f"in the URL; nothing was changed: give {name}= once"}
        page = http(url, "POST", b"", {"Accept": "text/html"})
        assert page.status == 400 and "given more than once" in page.text
    assert server.project.snapshots() == before
    run = server.load(doc["run_id"])
    assert run.status == "suspended" and run.steps["approve"].resume_data is None
    # the same URL with each parameter once still works
    assert post_json(resume + "&action=rejected", {"approved": False}).status == 202
    assert server.wait_until_settled(doc["run_id"]).steps["reject"].status == "completed"
