"""The example workflows in workflows/, each driven end to end through the CLI.

Time only moves with `wfrun tick --now ISO`: every `--now` below is computed from a due time
or deadline the run document reports, so no test sleeps.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import REPO, Outcome, Project

EXAMPLES = (
    "approval-link", "conditional-branching", "delayed-notification", "expense-approval",
    "http-callback", "interview", "parallel-review", "poll-job", "retry-api", "user-approval",
    "retry-request", "suspend-timeout", "escalation", "early-exit",
    "batch-approval", "approve-item", "webhook-order",
    "daily-report", "payment-order", "release-signoff",
)


def use(project: Project, name: str) -> None:
    """Copy an example (manifest and module) from the repository into the project."""
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"{name}{suffix}", project.workflows / f"{name}{suffix}")


def shift(iso: str, seconds: float) -> str:
    """An ISO time `seconds` after (or before) `iso`."""
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # wfrun's format


def tick(project: Project, now: str) -> Outcome:
    return project.run("tick", "--now", now)


def due_of(doc: dict[str, Any]) -> str:
    """The due time of a run's only timer."""
    assert len(doc["waiting"]) == 1, doc["waiting"]
    return str(doc["waiting"][0]["due_at"])


def as_shell(project: Project, command: str) -> Outcome:
    """Run a command wfrun printed (`wfrun resume ...`), exactly as printed, in the project."""
    argv = shlex.split(command)
    assert argv[0] == "wfrun"
    proc = subprocess.run([sys.executable, "-m", "wfrun", *argv[1:]], cwd=project.root,
                          capture_output=True, text=True, timeout=60)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def test_every_example_is_valid() -> None:
    names = sorted(p.stem for p in (REPO / "workflows").glob("*.yaml"))
    assert names == sorted(EXAMPLES)
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", "--workflows-dir", str(REPO / "workflows"),
         "validate", "--json"],
        capture_output=True, text=True, timeout=60, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert sorted(r["workflow"] for r in results) == sorted(EXAMPLES)
    assert all(r["ok"] for r in results), results


# -- expense-approval -----------------------------------------------------------------------


def test_expense_approval_rejected_branch(project: Project) -> None:
    use(project, "expense-approval")
    run_id = project.json("start", "expense-approval", "--input", '{"user": "ann", "amount": 42}')[
        "run_id"]
    done = project.json("resume", run_id, "--step", "manager-approval", "--action", "rejected",
                        "--data", '{"approved": false, "reviewer": "bob"}')
    assert done["status"] == "completed"
    assert done["steps"]["pay"]["status"] == "skipped"
    assert done["steps"]["reject"]["output"] == {"rejected": done["steps"]["submit"]["output"]["id"]}
    assert done["output"] == {"notified": "ann", "decision": "rejected"}
    again = project.run("resume", run_id, "--data", '{"approved": true}')
    assert again.code == 3
    assert "already resumed" in again.stderr


def test_expense_approval_input_is_checked_and_cancel_works(project: Project) -> None:
    use(project, "expense-approval")
    bad = project.run("start", "expense-approval", "--input", '{"user": "ann"}')
    assert bad.code == 2
    assert "amount" in bad.stderr
    run_id = project.json("start", "expense-approval", "--input", '{"user": "ann", "amount": 5}')[
        "run_id"]
    cancelled = project.json("cancel", run_id, "--reason", "duplicate")
    assert cancelled["status"] == "cancelled"
    assert cancelled["steps"]["manager-approval"]["status"] == "cancelled"
    assert project.run("resume", run_id, "--data", '{"approved": true}').code == 3


# -- approval-link --------------------------------------------------------------------------


def test_approval_link_sends_links_and_the_printed_command_resumes(project: Project) -> None:
    use(project, "approval-link")
    outbox = project.root / "outbox.txt"
    out = project.run("start", "approval-link", "--json", "--verbose", "--input",
                      json.dumps({"document": "q3.pdf", "outbox": str(outbox)}))
    assert out.code == 0
    doc = out.json()  # the step printed its message on stderr: stdout is still pure JSON
    assert "Please approve publishing q3.pdf" in out.stderr
    assert doc["status"] == "suspended"
    [pause] = doc["suspended"]
    assert pause["step"] == "request-approval"
    assert pause["suspend_data"] == {"document": "q3.pdf", "question": "Publish q3.pdf?"}
    # The step's output is its return value, also while it is suspended.
    assert doc["steps"]["request-approval"]["output"]["requested"] == "q3.pdf"
    # The "email" carries the commands and URLs the step received from suspend().
    mail = outbox.read_text()
    assert pause["resume_url"] in mail
    assert pause["cancel_url"] in mail
    command = next(line.split("approve: ", 1)[1] for line in mail.splitlines() if "approve:" in line)
    assert command == pause["resume_command"]
    # The person runs the command as printed (with data of their own).
    resumed = as_shell(project, command.replace("--data '{}'", """--data '{"note": "ok"}'"""))
    assert resumed.code == 0, resumed.stderr
    final = project.json("show", doc["run_id"])
    assert final["status"] == "completed"
    assert final["steps"]["request-approval"]["resume_data"] == {"note": "ok"}
    assert final["output"] == {"published": "q3.pdf", "note": "ok"}


def test_approval_link_cancel_command(project: Project) -> None:
    use(project, "approval-link")
    outbox = project.root / "outbox.txt"
    doc = project.json("start", "approval-link", "--input",
                       json.dumps({"document": "draft.md", "outbox": str(outbox)}))
    cancel = next(line.split("cancel:  ", 1)[1] for line in outbox.read_text().splitlines()
                  if "cancel:  " in line)
    assert as_shell(project, cancel).code == 0
    final = project.json("show", doc["run_id"])
    assert final["status"] == "cancelled"
    assert final["steps"]["publish"]["status"] == "cancelled"
    assert project.run("resume", doc["run_id"]).code == 3


def test_approval_link_suspension_times_out_after_three_days(project: Project) -> None:
    use(project, "approval-link")
    doc = project.json("start", "approval-link", "--input", '{"document": "x"}')
    deadline = doc["suspended"][0]["deadline"]
    assert deadline == shift(doc["suspended"][0]["since"], 3 * 86400)  # timeout: 3d
    early = tick(project, shift(deadline, -1))
    assert (early.code, early.stdout) == (0, "")
    assert tick(project, deadline).code == 0
    assert project.json("show", doc["run_id"])["status"] == "cancelled"  # on_timeout: cancel


# -- poll-job -------------------------------------------------------------------------------


def test_poll_job_polls_until_done(project: Project) -> None:
    use(project, "poll-job")
    status = project.root / "job.json"
    doc = project.json("start", "poll-job", "--input", json.dumps({"status_file": str(status)}))
    assert json.loads(status.read_text()) == {"status": "RUNNING"}
    assert doc["status"] == "waiting"
    [timer] = doc["waiting"]
    assert (timer["kind"], timer["runs"], timer["max_retries"]) == ("rerun", 1, 3)
    assert timer["resume_command"].startswith(f"wfrun --state-dir {project.state} resume ")
    run_id = doc["run_id"]
    # Not due yet: tick does nothing and prints nothing.
    early = tick(project, shift(due_of(doc), -1))
    assert (early.code, early.stdout) == (0, "")
    # Due: the step runs again (runs 2) with the context the first run passed; still RUNNING.
    assert tick(project, due_of(doc)).code == 0
    doc = project.json("show", run_id)
    assert doc["steps"]["poll"]["runs"] == 2
    assert doc["steps"]["poll"]["output"] == {"status": "RUNNING", "polls": 2}
    # The job finishes; the next poll sees it and the run completes.
    status.write_text(json.dumps({"status": "DONE", "result": {"rows": 1200}}))
    out = project.run("tick", "--now", due_of(doc), "--json")
    assert out.code == 0
    assert out.json()["advanced"] == [
        {"run_id": run_id, "step": "poll", "reason": "rerun", "status": "completed"}]
    final = project.json("show", run_id)
    assert final["output"] == {"result": {"rows": 1200}, "polled": 3}
    events = [e["type"] for e in final["history"] if e.get("step") == "poll"]
    assert events.count("rerun_scheduled") == 2
    assert events.count("timer_fired") == 2


def test_poll_job_gives_up_after_max_retries(project: Project) -> None:
    use(project, "poll-job")
    status = project.root / "job.json"
    doc = project.json("start", "poll-job", "--input", json.dumps({"status_file": str(status)}))
    run_id = doc["run_id"]
    for _ in range(2):  # reruns 1 and 2 poll again
        assert tick(project, due_of(doc)).code == 0
        doc = project.json("show", run_id)
    last = tick(project, due_of(doc))  # rerun 3 = execution 4 = MAX_RETRIES + 1: it raises
    assert last.code == 1
    final = project.json("show", run_id)
    assert final["status"] == "failed"
    assert final["steps"]["poll"]["runs"] == 4
    assert final["error"] == {"traceback": ANY, "step": "poll", "type": "RuntimeError",
                              "message": "Max retries exceeded: job still RUNNING"}
    assert final["steps"]["report"]["status"] == "cancelled"


# -- http-callback --------------------------------------------------------------------------


def test_http_callback_resume_reruns_the_step_with_the_callback(project: Project) -> None:
    use(project, "http-callback")
    request_file = project.root / "request.json"
    doc = project.json("start", "http-callback", "--input",
                       json.dumps({"request_file": str(request_file)}))
    assert doc["status"] == "waiting"
    assert doc["waiting"][0]["kind"] == "rerun"
    request = json.loads(request_file.read_text())
    assert request["callback_url"] == doc["waiting"][0]["resume_url"]
    # Data that fails resume_schema is refused before anything is written.
    before = project.snapshots()
    bad = project.run("resume", doc["run_id"], "--data", '{"result": 1}')
    assert bad.code == 2
    assert "status" in bad.stderr
    assert project.snapshots() == before
    # The "service" calls back with the command it was handed, long before the 24h timer.
    callback = request["callback_command"].replace(
        """'{"status": "..."}'""", """'{"status": "done", "result": 7}'""")
    answered = as_shell(project, callback)
    assert answered.code == 0, answered.stderr
    final = project.json("show", doc["run_id"])
    assert final["status"] == "completed"
    assert final["steps"]["start-job"]["runs"] == 2
    assert final["steps"]["start-job"]["output"] == {
        "callback": {"status": "done", "result": 7}, "via": "cli"}
    assert final["steps"]["start-job"]["resume_data"] is None  # a rerun gets callback_request
    assert final["output"] == {"status": "done", "result": 7}
    # The 24h timer was dropped: a tick a day later has nothing to do.
    late = tick(project, shift(due_of(doc), 60))
    assert (late.code, late.stdout) == (0, "")


def test_http_callback_timer_fires_first_and_the_step_gives_up(project: Project) -> None:
    use(project, "http-callback")
    doc = project.json("start", "http-callback", "--input",
                       json.dumps({"request_file": str(project.root / "request.json")}))
    assert due_of(doc) >= shift(doc["created_at"], 86400)  # rerun("24h", ...)
    out = tick(project, due_of(doc))
    assert out.code == 1
    assert "rerun -> failed" in out.stdout
    final = project.json("show", doc["run_id"])
    assert final["error"] == {"traceback": ANY, "step": "start-job", "type": "TimeoutError",
                              "message": "External service never completed job"}
    assert project.run("resume", doc["run_id"], "--data", '{"status": "late"}').code == 3


# -- retry-api ------------------------------------------------------------------------------


def test_retry_api_backs_off_and_succeeds(project: Project) -> None:
    use(project, "retry-api")
    counter = project.root / "calls.txt"
    doc = project.json("start", "retry-api", "--input", json.dumps({"counter_file": str(counter)}))
    assert doc["status"] == "waiting"
    first_due = due_of(doc)
    assert doc["waiting"][0]["kind"] == "retry"
    assert doc["steps"]["call-api"]["error"]["type"] == "ConnectionError"
    assert tick(project, first_due).code == 0  # call 2 fails too; backoff doubles to 60s
    doc = project.json("show", doc["run_id"])
    assert due_of(doc) == shift(first_due, 60)
    assert tick(project, due_of(doc)).code == 0  # call 3 succeeds
    final = project.json("show", doc["run_id"])
    assert final["status"] == "completed"
    assert final["output"] == {"status": 200, "calls": 3, "attempt": 3}
    assert counter.read_text() == "3"
    assert [e["attempt"] for e in final["history"] if e["type"] == "retried"] == [1, 2]


def test_retry_api_fails_when_attempts_are_exhausted(project: Project) -> None:
    use(project, "retry-api")
    counter = project.root / "calls.txt"
    doc = project.json("start", "retry-api", "--input",
                       json.dumps({"counter_file": str(counter), "fail_times": 99}))
    codes = []
    while doc["status"] == "waiting":
        codes.append(tick(project, due_of(doc)).code)
        doc = project.json("show", doc["run_id"])
    assert codes == [0, 0, 1]  # executions 2, 3 and 4 (max_attempts: 4)
    assert doc["status"] == "failed"
    assert doc["steps"]["call-api"]["runs"] == 4
    assert doc["error"] == {"traceback": ANY, "step": "call-api", "type": "ConnectionError",
                            "message": "API temporarily unavailable (call 4)"}
    assert any("Traceback" in (e.get("traceback") or "") for e in doc["history"])


# -- delayed-notification -------------------------------------------------------------------


def test_delayed_notification_sleeps_an_hour(project: Project) -> None:
    use(project, "delayed-notification")
    outbox = project.root / "outbox.txt"
    doc = project.json("start", "delayed-notification", "--input",
                       json.dumps({"to": "ann@example.com", "outbox": str(outbox)}))
    assert doc["status"] == "waiting"
    [timer] = doc["waiting"]
    assert (timer["step"], timer["kind"]) == ("delay", "sleep")
    assert [r["next_due"] for r in project.json("list")] == [timer["due_at"]]
    early = tick(project, shift(timer["due_at"], -60))
    assert (early.code, early.stdout, outbox.exists()) == (0, "", False)
    out = tick(project, timer["due_at"])
    assert out.code == 0
    assert out.stdout.split() == [doc["run_id"], "delay", "sleep", "->", "completed"]
    assert outbox.read_text() == "to ann@example.com: Your report is ready\n"
    assert project.json("show", doc["run_id"])["output"] == {"sent_to": "ann@example.com"}


# -- parallel-review ------------------------------------------------------------------------


def test_parallel_review_waits_for_both_reviews(project: Project) -> None:
    use(project, "parallel-review")
    doc = project.json("start", "parallel-review", "--input", '{"document": "contract.pdf"}')
    run_id = doc["run_id"]
    assert doc["status"] == "suspended"
    assert [s["step"] for s in doc["suspended"]] == ["technical-review", "legal-review"]
    assert len(project.json("pending")) == 2
    ambiguous = project.run("resume", run_id, "--data", '{"approved": true}')
    assert ambiguous.code == 2
    assert "technical-review" in ambiguous.stderr and "legal-review" in ambiguous.stderr
    half = project.json("resume", run_id, "--step", "legal-review", "--data", '{"approved": true}')
    assert half["status"] == "suspended"
    assert half["steps"]["finalize"]["status"] == "pending"
    done = project.json("resume", run_id, "--step", "technical-review",
                        "--data", '{"approved": false, "comments": "needs work"}')
    assert done["status"] == "completed"
    assert done["output"] == {"document": "contract.pdf", "decision": "rejected"}
    assert project.json("pending") == []


def test_parallel_review_fails_when_a_review_times_out(project: Project) -> None:
    use(project, "parallel-review")
    doc = project.json("start", "parallel-review", "--input", '{"document": "c.pdf"}')
    project.json("resume", doc["run_id"], "--step", "technical-review", "--data",
                 '{"approved": true}')
    deadline = doc["suspended"][1]["deadline"]
    out = tick(project, deadline)
    assert out.code == 1
    assert "legal-review  timeout -> failed" in out.stdout
    final = project.json("show", doc["run_id"])
    assert final["error"]["step"] == "legal-review"
    assert final["error"]["type"] == "TimeoutError"
    assert final["steps"]["finalize"]["status"] == "cancelled"


# -- conditional-branching ------------------------------------------------------------------


@pytest.mark.parametrize(("action", "taken", "skipped"),
                         [("choose-a", "path-a", "path-b"), ("choose-b", "path-b", "path-a")])
def test_conditional_branching_follows_the_action(
    project: Project, action: str, taken: str, skipped: str
) -> None:
    use(project, "conditional-branching")
    doc = project.json("start", "conditional-branching")
    assert doc["input"] == {}
    # The suggested command names the first action a later step waits for.
    assert "--action choose-a" in doc["suspended"][0]["resume_command"]
    done = project.json("resume", doc["run_id"], "--action", action,
                        "--data", '{"reason": "User preference"}')
    assert done["steps"]["decision-point"]["action"] == action
    assert done["steps"][taken]["status"] == "completed"
    assert done["steps"][skipped]["status"] == "skipped"
    assert done["output"] == {"took": taken, "reason": "User preference"}


# -- user-approval --------------------------------------------------------------------------


def test_user_approval_checks_resume_data_then_completes(project: Project) -> None:
    use(project, "user-approval")
    doc = project.json("start", "user-approval", "--input", '{"requestId": "r-17"}')
    run_id = doc["run_id"]
    [entry] = project.json("pending")
    assert entry["suspend_data"] == {"reason": "User approval required",
                                     "requestDetails": "Request r-17 pending review"}
    assert entry["resume_schema"]["required"] == ["approved"]
    assert entry["on_timeout"] == "resume"
    before = project.snapshots()
    for bad in ('{"approved": "yes"}', '{}', '{"approved": true, "extra": 1}', "not json"):
        out = project.run("resume", run_id, "--data", bad)
        assert out.code == 2, bad
    assert project.snapshots() == before  # refused data leaves the run exactly as it was
    done = project.json("resume", run_id, "--data", '{"approved": true}')
    assert done["status"] == "completed"
    assert done["output"] == {
        "result": "Request r-17 pending review - User approval required - Decision: Approved"}


def test_user_approval_times_out_after_seven_days_and_continues(project: Project) -> None:
    use(project, "user-approval")
    doc = project.json("start", "user-approval", "--input", '{"requestId": "r-18"}')
    [pause] = doc["suspended"]
    six_days = tick(project, shift(pause["since"], 6 * 86400))
    assert (six_days.code, six_days.stdout) == (0, "")
    out = project.run("tick", "--now", pause["deadline"], "--json")
    assert out.code == 0
    assert out.json()["advanced"][0]["reason"] == "timeout"
    final = project.json("show", doc["run_id"])
    assert final["status"] == "completed"  # on_timeout: resume, with resume_data = null
    assert final["steps"]["user-approval"]["resume_data"] is None
    assert final["output"]["result"].endswith("Decision: Rejected")
    assert [e["type"] for e in final["history"] if e["type"] == "timed_out"] == ["timed_out"]


def test_examples_run_from_a_plain_directory(tmp_path: Path) -> None:
    """The README's first command, minus the install: default ./workflows and ./.wfstate."""
    shutil.copytree(REPO / "workflows", tmp_path / "workflows")
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", "start", "expense-approval", "--input",
         '{"user": "ann", "amount": 42}'],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert "is suspended" in proc.stdout
    assert "wfrun resume " in proc.stdout
    assert (tmp_path / ".wfstate").stat().st_mode & 0o777 == 0o700


def test_readme_quick_start_is_two_commands_and_the_second_is_what_ci_runs() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line.strip()]
    assert len(commands) == 2
    assert "wfrun start expense-approval" in commands[0]
    ci = (REPO / ".ci" / "run").read_text().splitlines()
    assert commands[1] in ci
