"""A resume link of a step that the workflow's current manifest no longer has (it was edited
after the run paused): a POST is refused (409), so a GET offers no form and no "POST this URL";
it answers what the POST answers, the sentence `wfrun resume` says too. The cancel link still
works."""

from __future__ import annotations

import re

from .conftest import Server, http, post_json

EDITED = "name: approval\nsteps:\n  - id: ask\n    handler: ask\n"


def runs(server: Server) -> dict[str, bytes]:
    """The state directory's files but the parsed-manifest cache (it may grow)."""
    return {k: v for k, v in server.project.snapshots().items() if not k.startswith("cache/")}


def test_a_get_on_the_link_of_a_removed_step_says_so_instead_of_offering_the_resume(
        server: Server) -> None:
    doc = server.start("approval")
    [entry] = doc["suspended"]
    resume, cancel = entry["resume_url"], entry["cancel_url"]
    assert http(resume).status == 200  # the step exists: the link is described
    (server.project.workflows / "approval.yaml").write_text(EDITED)
    before = runs(server)

    described = http(resume)
    assert described.status == 409, described.text
    message = described.json()["error"]
    assert message == (f"step 'approve' of run {doc['run_id']} no longer exists in workflow "
                       "'approval'; restore it to resume this run, or cancel the run")
    assert str(server.project.workflows) not in message  # no server path to the link's holder
    assert described.json() == {"error": message}
    assert http(resume, "HEAD").status == 409

    page = http(resume, headers={"Accept": "text/html"})
    assert page.status == 409
    assert "<form" not in page.text and "<button" not in page.text
    assert re.search(r"<h1>Step no longer exists</h1>", page.text)
    assert "no longer exists in workflow &#x27;approval&#x27;" in page.text

    # the same sentence as the POST that the GET would have offered, and as `wfrun resume`
    posted = post_json(resume + "&action=approved", {"approved": True})
    assert (posted.status, posted.json()) == (409, {"error": message})
    form = http(resume, "POST", b"_wfrun_form=approval&_wfrun_action=approved",
                {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"})
    assert form.status == 409 and "<h1>Step no longer exists</h1>" in form.text
    out = server.project.run("resume", doc["run_id"], "--step", "approve")
    assert out.code == 2 and f"error: {message}" in out.stderr.splitlines()
    assert runs(server) == before  # nothing was resumed

    shown = server.project.json("show", doc["run_id"])["suspended"][0]
    assert shown["resume_url"] is None and shown["gone"] == message
    assert http(cancel).status == 200  # cancelling is still offered
    done = post_json(cancel, {"reason": "the step was removed"})
    assert (done.status, done.json()["status"]) == (200, "cancelled")


def test_the_link_of_a_child_run_whose_parent_step_was_removed_is_refused(
        server: Server) -> None:
    # the parent could never continue: its child's link answers as a removed step's does
    server.project.workflow("kid", "steps:\n  - {id: approve, wait: true}\n")
    outer = server.project.workflow("outer", "steps:\n  - {id: sub, workflow: kid}\n")
    doc = server.start("outer")
    [entry] = doc["suspended"]
    link = entry["resume_url"]
    assert http(link).status == 200
    outer.write_text("steps:\n  - id: fin\n")
    (server.project.workflows / "outer.py").write_text("def fin(ctx):\n    return 1\n")
    before = runs(server)
    described = http(link)
    assert described.status == 409, described.text
    message = described.json()["error"]
    assert f"step 'sub' of run {doc['run_id']} no longer exists" in message
    posted = post_json(link, {})
    assert (posted.status, posted.json()) == (409, {"error": message})
    assert runs(server) == before
