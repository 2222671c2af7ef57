"""Issue 3, time: reruns, sleeps, retries with backoff and suspension timeouts, fired by `tick`.

Every test drives the CLI in-process; time moves only through `tick --now ISO`, computed from
the due times and deadlines the run documents report.
"""

from __future__ import annotations

import json
import shlex
from datetime import datetime, timedelta, timezone
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import Outcome, Project


def _t(iso: str) -> datetime:
    return datetime.fromisoformat(iso.replace("Z", "+00:00"))


def shift(iso: str, seconds: float) -> str:
    """The ISO time `seconds` after (or before) `iso`, in wfrun's format."""
    later = _t(iso) + timedelta(seconds=seconds)
    return later.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def seconds_between(a: str, b: str) -> float:
    return (_t(b) - _t(a)).total_seconds()


def about(seconds: float, expected: float) -> bool:
    """A delay measured from a real-clock start, which the step's own run time lengthens."""
    return expected <= seconds < expected + 2


def due_of(doc: dict[str, Any]) -> str:
    assert len(doc["waiting"]) == 1, doc["waiting"]
    return str(doc["waiting"][0]["due_at"])


def tick(project: Project, now: str, *extra: str) -> Outcome:
    return project.run("tick", "--now", now, *extra)


def tick_json(project: Project, now: str) -> tuple[int, dict[str, Any]]:
    out = tick(project, now, "--json")
    return out.code, out.json()


POLL = "steps: [{id: poll}, {id: report}]"
POLL_PY = """
    import json
    MAX_RETRIES = 3

    def poll(ctx):
        run = ctx.run
        seen = {"runs": run.runs, "context": run.context, "callback": run.callback_request}
        if run.runs == 1:
            ctx.flow.rerun("10s", {"polls": 0}, MAX_RETRIES)
            return seen
        if run.runs == MAX_RETRIES + 1:
            raise RuntimeError("Max retries exceeded")
        job = json.load(open(ctx.input["job"]))
        if job["status"] == "DONE":
            return {**job, **seen}
        ctx.flow.rerun("10s", {"polls": run.context["polls"] + 1}, MAX_RETRIES)
        return seen

    def report(ctx):
        return {"result": ctx.steps["poll"].output["result"], "polled": ctx.steps["poll"].runs}
"""


def start_poll(project: Project, status: str = "RUNNING") -> tuple[dict[str, Any], Any]:
    project.workflow("poll", POLL, POLL_PY)
    job = project.root / "job.json"
    job.write_text(json.dumps({"status": status}))
    return project.json("start", "poll", "--input", json.dumps({"job": str(job)})), job


def test_polling_until_done_carries_context_and_counts_runs(project: Project) -> None:
    doc, job = start_poll(project)
    run_id = doc["run_id"]
    assert doc["status"] == "waiting"
    [timer] = doc["waiting"]
    assert (timer["kind"], timer["runs"], timer["max_retries"]) == ("rerun", 1, 3)
    assert about(seconds_between(doc["steps"]["poll"]["started_at"], timer["due_at"]), 10)
    assert doc["steps"]["poll"]["output"] == {"runs": 1, "context": None, "callback": None}
    assert doc["steps"]["report"]["status"] == "pending"
    early = tick(project, shift(timer["due_at"], -0.001))
    assert (early.code, early.stdout, early.stderr) == (0, "", "")
    code, report = tick_json(project, timer["due_at"])  # job still RUNNING: polls again
    assert code == 0
    assert report == {"advanced": [{"run_id": run_id, "step": "poll", "reason": "rerun",
                                    "status": "waiting"}], "errors": []}
    doc = project.json("show", run_id)
    assert doc["steps"]["poll"]["output"] == {"runs": 2, "context": {"polls": 0}, "callback": None}
    assert doc["waiting"][0]["runs"] == 2
    job.write_text(json.dumps({"status": "DONE", "result": 42}))
    code, report = tick_json(project, due_of(doc))
    assert (code, [a["status"] for a in report["advanced"]]) == (0, ["completed"])
    final = project.json("show", run_id)
    assert final["steps"]["poll"]["output"] == {
        "status": "DONE", "result": 42, "runs": 3, "context": {"polls": 1}, "callback": None}
    assert final["output"] == {"result": 42, "polled": 3}
    fired = [e for e in final["history"] if e["type"] == "timer_fired"]
    assert [e["step"] for e in fired] == ["poll", "poll"]
    assert tick(project, shift(due_of(doc), 86400)).stdout == ""  # nothing left to fire


def test_max_retries_exceeded_fails_the_run(project: Project) -> None:
    doc, _ = start_poll(project)
    codes = []
    while doc["status"] == "waiting":
        codes.append(tick(project, due_of(doc)).code)
        doc = project.json("show", doc["run_id"])
    assert codes == [0, 0, 1]  # executions 2, 3 poll; execution 4 = MAX_RETRIES + 1 raises
    assert (doc["status"], doc["steps"]["poll"]["runs"], doc["waiting"]) == ("failed", 4, [])
    assert doc["error"] == {"traceback": ANY, "step": "poll", "type": "RuntimeError",
                            "message": "Max retries exceeded"}
    assert doc["steps"]["report"]["status"] == "cancelled"


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_rerun_past_max_retries_proceeds_to_the_next_step(project: Project,
                                                          max_retries: int) -> None:
    project.workflow("stubborn", "steps: [{id: poll}, {id: after}]", f"""
        def poll(ctx):
            ctx.flow.rerun("5s", {{"last": ctx.run.runs}}, {max_retries})
            return {{"runs": ctx.run.runs, "context": ctx.run.context}}

        def after(ctx):
            return ctx.steps["poll"].output
        """)
    doc = project.json("start", "stubborn")
    for _ in range(max_retries):
        assert doc["status"] == "waiting"
        assert tick(project, due_of(doc)).code == 0
        doc = project.json("show", doc["run_id"])
    assert (doc["status"], doc["steps"]["poll"]["runs"]) == ("completed", max_retries + 1)
    context = {"last": max_retries} if max_retries else None
    assert doc["output"] == {"runs": max_retries + 1, "context": context}


def test_a_resume_and_a_timer_rerun_share_max_retries(project: Project) -> None:
    project.workflow("mix", "steps: [{id: poll}, {id: after}]", """
        def poll(ctx):
            ctx.flow.rerun("1h", {"n": ctx.run.runs}, 2)
            request = ctx.run.callback_request
            return {"runs": ctx.run.runs, "body": request and request["body"]}

        def after(ctx):
            return ctx.steps["poll"].output
        """)
    run_id = project.json("start", "mix")["run_id"]
    resumed = project.json("resume", run_id, "--data", '{"i": 1}')  # rerun 1 of 2, at once
    assert resumed["steps"]["poll"]["output"] == {"runs": 2, "body": {"i": 1}}
    assert tick(project, due_of(resumed)).code == 0  # rerun 2 of 2: its rerun() is ignored
    final = project.json("show", run_id)
    assert (final["status"], final["output"]) == ("completed", {"runs": 3, "body": None})


CALLBACK = "steps: [{id: start-job, resume_schema: {type: object, required: [status]}}, {id: use}]"
CALLBACK_PY = """
    import json

    def start_job(ctx):
        run = ctx.run
        if run.runs == 1:
            links = ctx.flow.rerun("24h", None, 1)
            with open(ctx.input["links"], "w") as fh:
                json.dump(dict(links), fh)
            return {"submitted": True}
        if run.runs == 2 and run.callback_request is None:
            raise Exception("External service never completed job")
        return {"request": run.callback_request, "runs": run.runs}

    def use(ctx):
        return ctx.steps["start-job"].output["request"]["body"]
"""


def start_callback(project: Project) -> tuple[dict[str, Any], dict[str, str]]:
    project.workflow("callback", CALLBACK, CALLBACK_PY)
    links = project.root / "links.json"
    doc = project.json("start", "callback", "--input", json.dumps({"links": str(links)}))
    assert doc["status"] == "waiting"
    assert about(seconds_between(doc["steps"]["start-job"]["started_at"], due_of(doc)), 86400)
    return doc, json.loads(links.read_text())


def test_callback_resume_before_the_timer_reruns_at_once(project: Project) -> None:
    doc, links = start_callback(project)
    run_id = doc["run_id"]
    assert links["resume_url"] == doc["waiting"][0]["resume_url"]
    argv = shlex.split(links["resume_command"])
    assert argv[0] == "wfrun" and run_id in argv
    before = project.snapshots()
    assert project.run(*argv[1:], "--data", '{"nope": 1}').code == 2  # resume_schema first
    assert project.snapshots() == before
    out = project.run(*argv[1:], "--data", '{"status": "done", "rows": 7}', "--json")
    assert out.code == 0, out.stderr
    final = out.json()
    assert final["status"] == "completed"
    step = final["steps"]["start-job"]
    assert step["runs"] == 2 and step["resume_data"] is None
    request = step["output"]["request"]
    assert set(request) == {"body", "headers", "query", "method", "source"}
    assert (request["body"], request["source"]) == ({"status": "done", "rows": 7}, "cli")
    assert isinstance(request["headers"], dict) and isinstance(request["query"], dict)
    assert final["output"] == {"status": "done", "rows": 7}
    assert final["waiting"] == []
    # The 24h timer was dropped: a tick after it would have fired does nothing.
    late = tick(project, shift(doc["waiting"][0]["due_at"], 1))
    assert (late.code, late.stdout) == (0, "")
    assert project.json("show", run_id)["steps"]["start-job"]["runs"] == 2
    assert project.run("resume", run_id, "--data", '{"status": "again"}').code == 3


def test_callback_timer_fires_first_and_the_step_raises(project: Project) -> None:
    doc, _ = start_callback(project)
    code, report = tick_json(project, due_of(doc))
    assert code == 1
    assert report["advanced"] == [{"run_id": doc["run_id"], "step": "start-job",
                                   "reason": "rerun", "status": "failed"}]
    final = project.json("show", doc["run_id"])
    assert (final["status"], final["steps"]["start-job"]["runs"]) == ("failed", 2)
    assert final["error"] == {"traceback": ANY, "step": "start-job", "type": "Exception",
                              "message": "External service never completed job"}
    assert project.run("resume", doc["run_id"], "--data", '{"status": "late"}').code == 3


@pytest.mark.parametrize("on_timeout", [None, "cancel", "resume", "fail"])
def test_suspension_timeout_per_on_timeout(project: Project, on_timeout: str | None) -> None:
    key = f", on_timeout: {on_timeout}" if on_timeout else ""
    project.workflow("gate", f"steps: [{{id: gate, wait: true{key}}}, {{id: after}}]", """
        def after(ctx):
            return {"resume_data": ctx.steps["gate"].resume_data, "status": ctx.steps["gate"].status}
        """)
    doc = project.json("start", "gate")
    [entry] = doc["suspended"]
    assert seconds_between(entry["since"], entry["deadline"]) == 86400  # default 24h
    assert entry["on_timeout"] == (on_timeout or "cancel")
    quiet = tick(project, shift(entry["deadline"], -1))
    assert (quiet.code, quiet.stdout) == (0, "")
    assert project.json("show", doc["run_id"])["status"] == "suspended"
    code, report = tick_json(project, entry["deadline"])
    final = project.json("show", doc["run_id"])
    expected = {None: "cancelled", "cancel": "cancelled", "resume": "completed", "fail": "failed"}
    assert final["status"] == expected[on_timeout]
    assert report["advanced"] == [{"run_id": doc["run_id"], "step": "gate", "reason": "timeout",
                                   "status": final["status"]}]
    assert code == (1 if on_timeout == "fail" else 0)
    assert any(e["type"] == "timed_out" for e in final["history"])
    if on_timeout == "resume":
        assert final["output"] == {"resume_data": None, "status": "completed"}
    else:
        if on_timeout == "fail":
            assert (final["error"]["step"], final["error"]["type"]) == ("gate", "TimeoutError")
        assert (final["steps"]["after"]["status"], final["steps"]["after"]["runs"]) == (
            "cancelled", 0)
    assert project.run("resume", doc["run_id"]).code == 3


def test_timeout_overrides_manifest_then_suspend_argument(project: Project,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps table cells at 80 columns otherwise
    project.workflow("timeouts", """
        steps:
          - {id: manual, wait: true, timeout: 1h30m, on_timeout: fail, needs: []}
          - {id: coded, timeout: 2h, on_timeout: fail, needs: []}
        """, """
        def coded(ctx):
            ctx.flow.suspend(timeout="30m", on_timeout="resume", data={"ask": 1})
            return "asked"
        """)
    doc = project.json("start", "timeouts")
    entries = {e["step"]: e for e in doc["suspended"]}
    assert seconds_between(entries["manual"]["since"], entries["manual"]["deadline"]) == 5400
    assert entries["manual"]["on_timeout"] == "fail"
    assert seconds_between(entries["coded"]["since"], entries["coded"]["deadline"]) == 1800
    assert entries["coded"]["on_timeout"] == "resume"
    pending = {p["step"]: p for p in project.json("pending")}
    assert {s: p["deadline"] for s, p in pending.items()} == {
        s: e["deadline"] for s, e in entries.items()}
    assert entries["manual"]["deadline"] in project.run("pending").stdout
    assert project.json("list")[0]["next_due"] == entries["coded"]["deadline"]
    code, report = tick_json(project, entries["coded"]["deadline"])  # only the 30m one is due
    assert code == 0 and [a["step"] for a in report["advanced"]] == ["coded"]
    doc = project.json("show", doc["run_id"])
    assert doc["status"] == "suspended"
    assert (doc["steps"]["coded"]["status"], doc["steps"]["coded"]["output"]) == (
        "completed", "asked")
    assert project.json("list")[0]["next_due"] == entries["manual"]["deadline"]
    assert tick(project, entries["manual"]["deadline"]).code == 1


def test_sleep_and_sleep_until_steps_and_flow_calls(project: Project,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # rich wraps table cells at 80 columns otherwise
    project.workflow("naps", """
        steps:
          - {id: nap, sleep: 1h}
          - {id: code-nap}
          - {id: until, sleep_until: "2099-01-01T00:00:00Z"}
          - {id: code-until}
          - {id: done}
        """, """
        def code_nap(ctx):
            ctx.flow.sleep("90s")
            return "napping"

        def code_until(ctx):
            ctx.flow.sleep_until("2099-06-01T12:00:00+02:00")
            return "until"

        def done(ctx):
            return [ctx.steps[s].status for s in ("nap", "code-nap", "until", "code-until")]
        """)
    doc = project.json("start", "naps")
    run_id = doc["run_id"]
    assert doc["waiting"][0]["kind"] == "sleep"
    assert seconds_between(doc["steps"]["nap"]["started_at"], due_of(doc)) == 3600
    assert project.json("list")[0]["next_due"] == due_of(doc)  # show and list say when
    assert due_of(doc) in project.run("show", run_id).stdout
    assert due_of(doc) in project.run("list").stdout
    reasons = []
    for expected in (90, None, None, None):
        due = due_of(doc)
        assert tick(project, shift(due, -0.001)).stdout == ""
        assert project.json("show", run_id)["waiting"] == doc["waiting"]
        code, report = tick_json(project, due)
        assert code == 0
        reasons += [(a["step"], a["reason"]) for a in report["advanced"]]
        previous, doc = doc, project.json("show", run_id)
        if expected is not None:
            assert seconds_between(previous["waiting"][0]["due_at"], due_of(doc)) == expected
    assert reasons == [("nap", "sleep"), ("code-nap", "sleep"), ("until", "sleep"),
                       ("code-until", "sleep")]
    assert doc["status"] == "completed"
    assert doc["output"] == ["completed"] * 4
    assert doc["steps"]["code-nap"]["output"] == "napping"
    assert previous["waiting"][0]["due_at"] == "2099-06-01T10:00:00.000Z"  # stored in UTC
    assert project.json("list")[0]["next_due"] is None


@pytest.mark.parametrize("succeed_on", [3, 99])
def test_retry_with_backoff_until_success_or_exhaustion(project: Project, succeed_on: int) -> None:
    project.workflow("flaky", """
        steps:
          - id: call
            retry: {max_attempts: 5, delay: 10s, backoff: 3, max_delay: 1m}
          - id: after
        """, """
        def call(ctx):
            if ctx.run.runs < ctx.input["succeed_on"]:
                raise ValueError(f"attempt {ctx.run.runs} failed")
            return {"ok": ctx.run.runs}

        def after(ctx):
            return ctx.steps["call"].output
        """)
    doc = project.json("start", "flaky", "--input", json.dumps({"succeed_on": succeed_on}))
    assert doc["waiting"][0]["kind"] == "retry"
    assert doc["steps"]["call"]["error"]["type"] == "ValueError"
    gaps, codes, reasons = [], [], []
    last = doc["steps"]["call"]["started_at"]
    while doc["status"] == "waiting":
        gaps.append(round(seconds_between(last, due_of(doc))))
        last = due_of(doc)
        out = tick(project, last, "--json")
        codes.append(out.code)
        reasons += [a["reason"] for a in out.json()["advanced"]]
        doc = project.json("show", doc["run_id"])
    retried = [e for e in doc["history"] if e["type"] == "retried"]
    if succeed_on == 3:
        assert (gaps, codes, reasons) == ([10, 30], [0, 0], ["retry", "retry"])
        assert doc["status"] == "completed"
        assert doc["output"] == {"ok": 3} and doc["steps"]["call"]["runs"] == 3
        assert [e["attempt"] for e in retried] == [1, 2]
        return
    assert gaps == [10, 30, 60, 60]  # 10s * 3^n, capped at max_delay
    assert codes == [0, 0, 0, 1]
    assert doc["run_id"] in out.stderr  # the failed run is named on stderr
    assert doc["status"] == "failed"
    assert doc["error"] == {"traceback": ANY, "step": "call", "type": "ValueError",
                            "message": "attempt 5 failed"}
    assert doc["steps"]["call"]["runs"] == 5
    assert doc["steps"]["after"]["status"] == "cancelled"
    failed = [e for e in doc["history"] if e["type"] == "step_failed"]
    assert "Traceback" in failed[0]["traceback"] and "ValueError" in failed[0]["traceback"]
    assert all("Traceback" in e["traceback"] for e in retried) and len(retried) == 4


def test_a_fired_run_continues_in_the_same_tick_until_it_pauses(project: Project) -> None:
    project.workflow("chain", """
        steps:
          - {id: poll}
          - {id: middle}
          - {id: gate, wait: true, timeout: 2h}
        """, """
        def poll(ctx):
            if ctx.run.runs == 1:
                ctx.flow.rerun("1m")
            return ctx.run.runs

        def middle(ctx):
            return ctx.steps["poll"].output * 10
        """)
    doc = project.json("start", "chain")
    code, report = tick_json(project, due_of(doc))
    assert code == 0
    assert report["advanced"] == [{"run_id": doc["run_id"], "step": "poll", "reason": "rerun",
                                   "status": "suspended"}]
    doc = project.json("show", doc["run_id"])
    assert doc["steps"]["middle"]["output"] == 20
    [entry] = doc["suspended"]
    assert project.json("list")[0]["next_due"] == entry["deadline"]


def test_now_is_an_instant_in_any_offset_and_bad_now_is_refused(project: Project) -> None:
    project.workflow("nap", "steps: [{id: nap, sleep: 1h}]")
    due = due_of(project.json("start", "nap"))
    moment = _t(due)
    plus2 = moment.astimezone(timezone(timedelta(hours=2))).isoformat()
    assert not plus2.endswith("+00:00")
    minus5 = (moment - timedelta(seconds=1)).astimezone(timezone(timedelta(hours=-5)))
    assert tick(project, minus5.isoformat()).stdout == ""
    assert "sleep" in tick(project, plus2).stdout
    bad = project.run("tick", "--now", "tomorrow")
    assert bad.code == 2 and "--now" in bad.stderr
