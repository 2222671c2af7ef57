"""Every example in workflows/ through `wfrun.testing` (the `wfrun_harness` fixture), the way a
user tests their own workflows: a fake clock that moves only when told, no sleeping, no CLI.

The pytest plugin finds `workflows/` in the rootdir; the CLI tests of the same examples are in
test_examples.py and test_examples_more.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from _flaky_api import flaky_api

from wfrun.errors import ConflictError, SchemaViolation, UsageError
from wfrun.testing import Harness


def test_the_fixture_uses_the_repository_examples(wfrun_harness: Harness) -> None:
    assert Path(wfrun_harness.workflows_dir).resolve() == Path(__file__).parents[2] / "workflows"


def test_expense_approval(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("expense-approval", {"user": "ann", "amount": 42})
    assert run["status"] == "suspended"
    with pytest.raises(SchemaViolation):
        wfrun_harness.resume(run["run_id"], {"approved": "yes"})
    done = wfrun_harness.resume(run["run_id"], {"approved": True, "reviewer": "bob"},
                                action="approved")
    assert done["output"] == {"notified": "ann", "decision": "approved"}
    assert done["steps"]["pay"]["output"]["approved_by"] == "bob"
    assert wfrun_harness.logs(run["run_id"])[0]["text"] == "expense of 42 submitted by ann"
    with pytest.raises(ConflictError):
        wfrun_harness.resume(run["run_id"], {"approved": False})


def test_expense_approval_is_cancelled_after_seven_days(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("expense-approval", {"user": "ann", "amount": 42})
    wfrun_harness.advance("6d23h59m")
    assert wfrun_harness.show(run["run_id"])["status"] == "suspended"
    wfrun_harness.advance("1m")
    assert wfrun_harness.show(run["run_id"])["status"] == "cancelled"


def test_approval_link(wfrun_harness: Harness, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.txt"
    run = wfrun_harness.start("approval-link", {"document": "q3.pdf", "outbox": str(outbox)})
    assert run["suspended"][0]["resume_command"] in outbox.read_text()
    assert "Please approve publishing q3.pdf." in wfrun_harness.output(run["run_id"])
    done = wfrun_harness.resume(run["run_id"], {"note": "ok"})
    assert done["output"] == {"published": "q3.pdf", "note": "ok"}


def test_poll_job(wfrun_harness: Harness, tmp_path: Path) -> None:
    status = tmp_path / "job.json"
    run = wfrun_harness.start("poll-job", {"status_file": str(status)})
    assert wfrun_harness.advance("9s")["advanced"] == []
    assert wfrun_harness.advance("1s")["advanced"][0]["status"] == "waiting"
    status.write_text(json.dumps({"status": "DONE", "result": {"rows": 7}}))
    wfrun_harness.advance("10s")
    assert wfrun_harness.show(run["run_id"])["output"] == {"result": {"rows": 7}, "polled": 3}


def test_http_callback(wfrun_harness: Harness, tmp_path: Path) -> None:
    request = tmp_path / "request.json"
    run = wfrun_harness.start("http-callback", {"request_file": str(request)})
    assert json.loads(request.read_text())["callback_url"] == run["waiting"][0]["resume_url"]
    done = wfrun_harness.resume(run["run_id"], {"status": "done"})
    assert done["output"] == {"status": "done"}
    assert done["steps"]["start-job"]["runs"] == 2


def test_http_callback_never_called_back(wfrun_harness: Harness, tmp_path: Path) -> None:
    run = wfrun_harness.start("http-callback", {"request_file": str(tmp_path / "r.json")})
    wfrun_harness.advance("24h")
    final = wfrun_harness.show(run["run_id"])
    assert final["error"]["message"] == "External service never completed job"


def test_retry_api(wfrun_harness: Harness, tmp_path: Path) -> None:
    run = wfrun_harness.start("retry-api", {"counter_file": str(tmp_path / "n")})
    wfrun_harness.advance("30s")  # retry 1 fails: the next is 60 s later
    assert wfrun_harness.show(run["run_id"])["status"] == "waiting"
    wfrun_harness.advance("60s")
    assert wfrun_harness.show(run["run_id"])["output"]["calls"] == 3


def test_retry_request(wfrun_harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    with flaky_api(failures=1) as api:
        run = wfrun_harness.start("retry-request", {"url": api.url})
        assert run["status"] == "waiting"
        wfrun_harness.advance_to_due(run["run_id"])
    final = wfrun_harness.show(run["run_id"])
    assert final["output"]["delivered"] is True
    assert final["output"]["attempts"] == 2


def test_delayed_notification(wfrun_harness: Harness, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.txt"
    run = wfrun_harness.start("delayed-notification", {"to": "ann", "outbox": str(outbox)})
    wfrun_harness.advance("59m")
    assert not outbox.exists()
    wfrun_harness.advance("1m")
    assert outbox.read_text() == "to ann: Your report is ready\n"
    assert wfrun_harness.show(run["run_id"])["status"] == "completed"


def test_parallel_review(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("parallel-review", {"document": "c.pdf"})
    with pytest.raises(UsageError):
        wfrun_harness.resume(run["run_id"], {"approved": True})  # which one? --step needed
    wfrun_harness.resume(run["run_id"], {"approved": True}, step="technical-review")
    done = wfrun_harness.resume(run["run_id"], {"approved": True}, step="legal-review")
    assert done["output"] == {"document": "c.pdf", "decision": "approved"}


def test_parallel_review_times_out(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("parallel-review", {"document": "c.pdf"})
    wfrun_harness.advance("3d")
    assert wfrun_harness.show(run["run_id"])["error"]["type"] == "TimeoutError"


def test_conditional_branching(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("conditional-branching")
    done = wfrun_harness.resume(run["run_id"], {"reason": "why not"}, action="choose-b")
    assert done["output"] == {"took": "path-b", "reason": "why not"}


def test_user_approval_times_out_after_seven_days(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("user-approval", {"requestId": "r-1"})
    assert wfrun_harness.pending()[0]["suspend_data"]["reason"] == "User approval required"
    wfrun_harness.advance("7d")
    final = wfrun_harness.show(run["run_id"])
    assert final["output"]["result"].endswith("Decision: Rejected")
    assert len(wfrun_harness.history(run["run_id"], "timed_out")) == 1


def test_suspend_timeout(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("suspend-timeout", {"order": "o-1"})
    wfrun_harness.advance("6d23h")
    assert wfrun_harness.show(run["run_id"])["status"] == "suspended"
    wfrun_harness.advance("1h")
    assert wfrun_harness.show(run["run_id"])["output"]["by"] == "timeout"


def test_escalation(wfrun_harness: Harness) -> None:
    run = wfrun_harness.start("escalation", {"ticket": "T-3"})
    wfrun_harness.advance("4h")  # no response: the 24 h escalation timer starts
    assert wfrun_harness.show(run["run_id"])["waiting"][0]["step"] == "escalation-timer"
    wfrun_harness.advance("24h")
    assert wfrun_harness.show(run["run_id"])["output"]["escalated"] is True


def test_early_exit(wfrun_harness: Harness, tmp_path: Path) -> None:
    order = {"order": "o-1", "amount": 3, "ledger": str(tmp_path / "ledger")}
    assert wfrun_harness.start("early-exit", order)["steps"]["charge"]["status"] == "completed"
    again = wfrun_harness.start("early-exit", order)
    assert (again["status"], again["steps"]["charge"]["status"]) == ("completed", "skipped")
