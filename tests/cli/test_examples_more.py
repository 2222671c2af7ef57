"""The examples added for issue 5 (retry-request, suspend-timeout, escalation, early-exit),
each driven end to end through the CLI; time moves only with `wfrun tick --now`."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

import pytest
from _flaky_api import flaky_api
from conftest import REPO, Project
from typer.testing import CliRunner

from wfrun.cli import app

from .test_examples import EXAMPLES, as_shell, due_of, shift, tick, use


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # the local API must never go through a proxy
    monkeypatch.setenv("no_proxy", "127.0.0.1")


# -- retry-request ----------------------------------------------------------------------------


def test_retry_request_reruns_from_except_until_the_api_answers(project: Project) -> None:
    use(project, "retry-request")
    with flaky_api(failures=2) as api:
        doc = project.json("start", "retry-request", "--input", json.dumps({"url": api.url}))
        assert doc["status"] == "waiting"
        [timer] = doc["waiting"]
        assert (timer["kind"], timer["runs"], timer["max_retries"]) == ("rerun", 1, 3)
        started = doc["steps"]["call-api"]["started_at"]
        assert shift(started, 30) <= timer["due_at"] <= shift(started, 40)  # DELAY = "30s"
        assert doc["steps"]["call-api"]["output"]["ok"] is False
        assert tick(project, timer["due_at"]).code == 0  # 2nd request: 503 again
        doc = project.json("show", doc["run_id"])
        out = tick(project, due_of(doc))  # 3rd request succeeds
        assert out.stdout.split()[1:] == ["call-api", "rerun", "->", "completed"]
        final = project.json("show", doc["run_id"])
        assert api.requests == 3
    assert final["output"] == {"delivered": True, "attempts": 3, "body": {"answer": 42, "request": 3}}
    warnings = [r["text"] for r in project.json("logs", doc["run_id"], "--step", "call-api")]
    assert len(warnings) == 2
    assert warnings[0].startswith("request failed (execution 1): HTTP Error 503")


def test_retry_request_goes_on_when_max_retries_is_reached(project: Project) -> None:
    use(project, "retry-request")
    with flaky_api(failures=99) as api:
        doc = project.json("start", "retry-request", "--input", json.dumps({"url": api.url}))
        while doc["status"] == "waiting":
            assert tick(project, due_of(doc)).code == 0
            doc = project.json("show", doc["run_id"])
        assert api.requests == 4  # the first execution and MAX_RETRIES = 3 reruns
    assert doc["status"] == "completed"  # the 4th rerun() was ignored: the run went on
    assert doc["output"]["delivered"] is False
    assert doc["output"]["attempts"] == 4
    notes = [e.get("note") for e in doc["history"]
             if e["type"] == "step_completed" and e["step"] == "call-api"]
    assert notes == ["rerun ignored: max_retries (3) reached; the step's return value is its output"]
    assert doc["warnings"] == [
        "step 'call-api' reached its rerun limit (max_retries=3): its last return value was "
        "taken as its output and the run went on"]


def test_retry_request_with_no_server_at_all(project: Project) -> None:
    use(project, "retry-request")
    with flaky_api(failures=0) as api:
        url = api.url  # the port is closed once the block ends
    doc = project.json("start", "retry-request", "--input", json.dumps({"url": url}))
    assert doc["status"] == "waiting"
    assert "refused" in doc["steps"]["call-api"]["output"]["error"].lower()


# -- suspend-timeout --------------------------------------------------------------------------


def test_suspend_timeout_resumes_itself_after_seven_days(project: Project) -> None:
    use(project, "suspend-timeout")
    out = project.run("start", "suspend-timeout", "--input", '{"order": "o-1"}', "--json", "-v")
    assert out.code == 0
    doc = out.json()
    [pause] = doc["suspended"]
    assert pause["deadline"] == shift(pause["since"], 7 * 86400)  # from suspend(timeout=...)
    assert pause["on_timeout"] == "resume"
    assert pause["suspend_data"] == {"order": "o-1"}
    assert f"review order o-1 within 7 days: {pause['resume_command']}" in out.stderr
    almost = tick(project, shift(pause["deadline"], -1))
    assert (almost.code, almost.stdout) == (0, "")
    assert project.json("show", doc["run_id"])["status"] == "suspended"
    report = project.json("tick", "--now", pause["deadline"])
    assert report["advanced"] == [{"run_id": doc["run_id"], "step": "request-review",
                                   "reason": "timeout", "status": "completed"}]
    final = project.json("show", doc["run_id"])
    assert final["output"] == {"order": "o-1", "decision": "approved", "by": "timeout"}


def test_suspend_timeout_answered_in_time(project: Project) -> None:
    use(project, "suspend-timeout")
    doc = project.json("start", "suspend-timeout", "--input", '{"order": "o-2"}')
    command = doc["suspended"][0]["resume_command"]
    answered = as_shell(project, command.replace(
        """'{"approved": true}'""", """'{"approved": false, "by": "eve"}'"""))
    assert answered.code == 0, answered.stderr
    final = project.json("show", doc["run_id"])
    assert final["output"] == {"order": "o-2", "decision": "rejected", "by": "eve"}
    late = tick(project, shift(doc["suspended"][0]["deadline"], 1))
    assert (late.code, late.stdout) == (0, "")  # the deadline died with the suspension


# -- escalation -------------------------------------------------------------------------------


def test_escalation_without_a_response_sleeps_a_day_then_escalates(project: Project) -> None:
    use(project, "escalation")
    pager = project.root / "pager.txt"
    doc = project.json("start", "escalation", "--input",
                       json.dumps({"ticket": "T-9", "pager": str(pager)}))
    [pause] = doc["suspended"]
    assert pause["deadline"] == shift(pause["since"], 4 * 3600)
    assert tick(project, pause["deadline"]).code == 0  # the wait times out and resumes
    doc = project.json("show", doc["run_id"])
    assert doc["status"] == "waiting"
    assert doc["steps"]["triage"]["action"] == "pending"
    [timer] = doc["waiting"]
    assert (timer["step"], timer["kind"]) == ("escalation-timer", "sleep")
    assert timer["due_at"] == shift(pause["deadline"], 86400)
    assert tick(project, shift(timer["due_at"], -1)).stdout == ""
    assert not pager.exists()
    assert tick(project, timer["due_at"]).code == 0
    final = project.json("show", doc["run_id"])
    assert final["status"] == "completed"
    assert final["output"] == {"ticket": "T-9", "escalated": True, "reason": "no response"}
    assert final["steps"]["close"]["status"] == "skipped"
    assert pager.read_text() == "ticket T-9 escalated to a manager\n"


def test_escalation_resolved_in_time_closes_the_ticket(project: Project) -> None:
    use(project, "escalation")
    doc = project.json("start", "escalation", "--input", '{"ticket": "T-1"}')
    done = project.json("resume", doc["run_id"], "--data", '{"status": "resolved", "by": "sam"}')
    assert done["status"] == "completed"
    assert done["output"] == {"ticket": "T-1", "escalated": False, "resolved_by": "sam"}
    assert {s: done["steps"][s]["status"] for s in ("escalation-timer", "escalate")} == {
        "escalation-timer": "skipped", "escalate": "skipped"}


def test_escalation_still_pending_starts_the_timer(project: Project) -> None:
    use(project, "escalation")
    doc = project.json("start", "escalation", "--input", '{"ticket": "T-2"}')
    bad = project.run("resume", doc["run_id"], "--data", '{"status": "later"}')
    assert bad.code == 2
    waiting = project.json("resume", doc["run_id"], "--data", '{"status": "pending"}')
    assert waiting["status"] == "waiting"
    assert waiting["steps"]["triage"]["output"]["reason"] == "still pending"
    assert tick(project, due_of(waiting)).code == 0
    assert project.json("show", doc["run_id"])["output"]["escalated"] is True


# -- early-exit -------------------------------------------------------------------------------


def test_early_exit_skips_the_rest_for_a_duplicate(project: Project) -> None:
    use(project, "early-exit")
    ledger = project.root / "ledger.txt"
    order = json.dumps({"order": "o-7", "amount": 12.5, "ledger": str(ledger)})
    first = project.json("start", "early-exit", "--input", order)
    assert first["status"] == "completed"
    assert first["output"] == {"order": "o-7", "charged": 12.5}
    assert ledger.read_text() == "o-7\n"
    second = project.run("start", "early-exit", "--input", order)
    assert second.code == 0
    assert "is completed" in second.stdout
    run_id = project.json("list", "--limit", "1")[0]["run_id"]
    doc = project.json("show", run_id)
    assert doc["status"] == "completed"
    assert {s: v["status"] for s, v in doc["steps"].items()} == {
        "check": "completed", "charge": "skipped", "confirm": "skipped"}
    assert doc["output"] == {"order": "o-7", "duplicate": True}
    [done] = [e for e in doc["history"] if e["type"] == "completed"]
    assert done["reason"] == "order o-7 was already processed"
    assert ledger.read_text() == "o-7\n"  # not charged twice


def test_every_example_starts_with_the_tutorial_command(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tutorial = (REPO / "docs" / "tutorial.md").read_text()
    section = tutorial.split("## All the examples", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()
             if line.strip()]
    assert sorted(shlex.split(line)[2] for line in lines) == sorted(EXAMPLES)
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")
    monkeypatch.chdir(tmp_path)
    with flaky_api(failures=0) as api:
        for line in lines:
            argv = shlex.split(line.replace("http://127.0.0.1:8000/answer.json", api.url))
            assert argv[0] == "wfrun"
            result = CliRunner().invoke(app, [*argv[1:], "--json"])
            assert result.exit_code == 0, (line, result.output)
            doc = json.loads(result.stdout)
            assert doc["status"] in ("suspended", "waiting", "completed"), (line, doc["status"])
            if argv[2] == "retry-request":
                assert doc["output"]["body"] == {"answer": 42, "request": 1}
