"""Issue 21 point 4, SPEC §2 and §7: N-of-M approvals over HTTP. Each approver has links of
their own; a second decision is 409; a token that is not an approver's is 404; the approval
page names the approver and shows the decisions so far."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from conftest import REPO

from .conftest import Server, http, post_json


@pytest.fixture
def signoff(server: Server) -> dict[str, Any]:
    """Run `rel` of the example `release-signoff`, started, with its links by approver."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"release-signoff{suffix}", server.project.workflows)
    doc = server.project.json("start", "release-signoff", "--input", '{"version": "2.0"}',
                              "--run-id", "rel")
    entry = doc["suspended"][0]
    return {a["name"]: a for a in entry["approvers"]}


def approve(url: str, action: str, comment: str = "ok") -> Any:
    return post_json(f"{url}&action={action}", {"comment": comment})


def test_each_approver_decides_once_with_their_own_link(server: Server,
                                                       signoff: dict[str, Any]) -> None:
    urls = {name: links["resume_url"] for name, links in signoff.items()}
    assert len(set(urls.values())) == 3
    first = approve(urls["alice"], "approved")
    assert first.status == 202, first.text
    assert first.json()["by"] == "alice" and first.json()["decision"] is None
    assert server.load("rel").status == "suspended"
    again = approve(urls["alice"], "rejected")
    assert again.status == 409 and "already decided" in again.json()["error"]
    described = http(urls["alice"]).json()  # what her link says now: not "POST this URL"
    assert described["how"].startswith("alice already decided (approved at ")
    assert http(urls["bob"]).json()["how"].startswith("POST this URL")
    second = approve(urls["carol"], "approved", "ship it")
    assert second.status == 202 and second.json()["decision"] == "approved"
    run = server.wait_until_settled("rel")
    assert run.status == "completed"
    output = run.steps["signoff"].output
    assert [(d["by"], d["action"], d["source"]) for d in output["approvals"]] == [
        ("alice", "approved", "http"), ("carol", "approved", "http")]
    assert run.output == {"released": "2.0", "approved_by": ["alice", "carol"]}
    assert approve(urls["bob"], "approved").status == 409  # the step is decided: link ended


def test_tokens_are_scoped_to_their_approver(server: Server, signoff: dict[str, Any]) -> None:
    alice = signoff["alice"]["resume_url"]
    base, token = alice.split("token=")
    secret = token.split("~", 1)[1]
    altered = secret[:-1] + ("x" if secret[-1] != "x" else "y")
    before = server.project.snapshots()
    for forged in (f"bob~{secret}", secret, f"dave~{secret}", f"alice~{altered}"):
        reply = approve(f"{base}token={forged}", "approved")
        assert reply.status == 404, forged
        assert reply.json() == {"error": "not found"}
    assert server.project.snapshots() == before


def test_two_rejections_over_http_abort(server: Server, signoff: dict[str, Any]) -> None:
    assert approve(signoff["bob"]["resume_url"], "rejected").status == 202
    assert approve(signoff["carol"]["resume_url"], "rejected").status == 202
    run = server.wait_until_settled("rel")
    assert run.steps["signoff"].action == "rejected"
    assert run.output == {"aborted": "2.0", "rejected_by": ["bob", "carol"]}


def test_an_approvers_cancel_link_cancels_the_run(server: Server,
                                                  signoff: dict[str, Any]) -> None:
    reply = http(signoff["bob"]["cancel_url"], "POST")
    assert reply.status == 200
    assert server.load("rel").status == "cancelled"


def test_the_page_names_the_approver_and_shows_the_decisions(
        server: Server, signoff: dict[str, Any]) -> None:
    assert approve(signoff["alice"]["resume_url"], "approved", "fine").status == 202
    page = http(signoff["bob"]["resume_url"], headers={"Accept": "text/html"})
    assert page.status == 200
    assert 'You decide as <b>bob</b>' in page.text
    assert "alice: approved" in page.text
    assert 'id="action-approved"' in page.text and 'id="action-rejected"' in page.text
    assert "bob~" in page.text  # the form posts to bob's own link
    mine = http(signoff["alice"]["resume_url"], headers={"Accept": "text/html"})
    assert "You already decided: approved" in mine.text and 'id="approval"' not in mine.text
    described = http(signoff["carol"]["resume_url"], headers={"Accept": "application/json"})
    body = described.json()
    assert body["approver"] == "carol" and body["actions"] == ["approved", "rejected"]
    assert [d["by"] for d in body["approvals"]["decisions"]] == ["alice"]
    # the page's form: bob's Approve button decides as bob
    form = http(signoff["bob"]["resume_url"], "POST",
                b"_wfrun_form=approval&_wfrun_action=approved&field%3Acomment=yes",
                {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert form.status == 202, form.text
    assert "as bob" in form.text
    run = server.wait_until_settled("rel")
    decisions = run.steps["signoff"].output["approvals"]
    assert [(d["by"], d["data"]) for d in decisions] == [("alice", {"comment": "fine"}),
                                                         ("bob", {"comment": "yes"})]
