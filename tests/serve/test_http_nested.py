"""wfrun serve and composite steps: a foreach iteration's links, and a child run's links that
continue its parent."""

from __future__ import annotations

import time

from conftest import Project

from .conftest import Server, http, post_json


def _settled(server: Server, run_id: str, status: str) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        current = server.load(run_id).status
        if current == status:
            return current
        time.sleep(0.02)
    return server.load(run_id).status


def test_a_foreach_iteration_link_resumes_it(server: Server, project: Project) -> None:
    project.workflow("fe", """
        name: fe
        steps:
          - id: items
          - id: each
            foreach: items
            resume_schema: {type: object, required: [ok], properties: {ok: {type: boolean}}}
    """, """
        def items(ctx):
            return ["a", "b"]

        def each(ctx):
            if ctx.index == 1:
                ctx.flow.suspend(data={"asks": ctx.item})
            return ctx.item
    """)
    doc = server.start("fe")
    [entry] = doc["suspended"]
    assert "/steps/each%5B1%5D/resume?token=" in entry["resume_url"]
    page = http(entry["resume_url"], headers={"Accept": "text/html"})
    assert page.status == 200 and "each[1]" in page.text and "asks" in page.text
    assert post_json(entry["resume_url"], {"ok": "no"}).status == 422
    reply = post_json(entry["resume_url"], {"ok": True})
    assert reply.status == 202, reply.text
    assert _settled(server, doc["run_id"], "completed") == "completed"
    run = server.load(doc["run_id"])
    assert run.steps["each"].iterations is not None
    assert run.steps["each"].iterations[1].resume_data == {"ok": True}
    assert post_json(entry["resume_url"], {"ok": True}).status == 409


def test_a_child_run_link_continues_its_parent(server: Server, project: Project) -> None:
    project.workflow("parent", """
        name: parent
        steps:
          - id: review
            workflow: approval
    """)
    doc = server.start("parent")
    [entry] = doc["suspended"]
    assert entry["step"] == "review/approve"
    child = entry["child_run_id"]
    assert entry["resume_url"].startswith(f"{server.base}/runs/{child}/steps/approve/resume?")
    reply = post_json(entry["resume_url"] + "&action=approved", {"approved": True})
    assert reply.status == 202, reply.text
    assert _settled(server, doc["run_id"], "completed") == "completed"
    assert server.load(doc["run_id"]).output == {
        "decision": "approved", "data": {"approved": True}}
