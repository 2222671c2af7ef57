"""Issue 2, SPEC §3: what `ctx` gives a step, needs / when / skipping / joining, wait and sleep
steps, the four schemas, and how a step fails (two pause calls, non-JSON output, exceptions).
"""

from __future__ import annotations

import json
from typing import Any
from unittest.mock import ANY

import pytest
from conftest import Project

# -- needs, when, skipping, joining -------------------------------------------------------------


def test_needs_defaults_to_the_previous_step_and_empty_needs_means_none(project: Project) -> None:
    project.workflow("deps", """
        steps:
          - {id: gate, wait: true}
          - id: after          # needs gate (the previous step) by default
          - id: free
            needs: []          # depends on nothing: runs while gate is suspended
        """, """
        def after(ctx):
            return {"gate": ctx.steps["gate"].resume_data, "free": ctx.steps["free"].status}

        def free(ctx):
            return {"gate": ctx.steps["gate"].status}
        """)
    doc = project.json("start", "deps")
    assert doc["status"] == "suspended"
    assert doc["steps"]["after"]["status"] == "pending"
    assert doc["steps"]["free"]["status"] == "completed"
    assert doc["steps"]["free"]["output"] == {"gate": "suspended"}
    done = project.json("resume", doc["run_id"], "--data", '"opened"')
    assert done["status"] == "completed"
    assert done["steps"]["after"]["output"] == {"gate": "opened", "free": "completed"}


ROUTES = """
steps:
  - id: decide
  - id: only-a
    when: {decide: a}                # a string
  - id: a-or-b
    needs: [decide]
    when: {decide: [a, b]}           # a list
  - id: join
    needs: [only-a, a-or-b]          # runs if at least one need completed
  - id: after-only-a
    needs: [only-a]                  # skipped when all its needs are skipped
"""
ROUTES_PY = """
def decide(ctx):
    if ctx.input.get("route"):
        ctx.flow.route(ctx.input["route"])
    return "decided"

def only_a(ctx):
    return "only-a ran"

def a_or_b(ctx):
    return "a-or-b ran"

def join(ctx):
    return {s: ctx.steps[s].status for s in ("only-a", "a-or-b")}

def after_only_a(ctx):
    return "after ran"
"""


@pytest.mark.parametrize(("route", "expected"), [
    ("a", dict.fromkeys(("only-a", "a-or-b", "join", "after-only-a"), "completed")),
    ("b", {"only-a": "skipped", "a-or-b": "completed", "join": "completed",
           "after-only-a": "skipped"}),
    (None, dict.fromkeys(("only-a", "a-or-b", "join", "after-only-a"), "skipped")),
])
def test_when_skipping_and_joining(project: Project, route: str | None,
                                   expected: dict[str, str]) -> None:
    project.workflow("routes", ROUTES, ROUTES_PY)
    doc = project.json("start", "routes", "--input", json.dumps({"route": route}))
    assert doc["status"] == "completed"
    assert doc["steps"]["decide"]["action"] == route
    assert {s: doc["steps"][s]["status"] for s in expected} == expected
    for sid, status in expected.items():
        runs = doc["steps"][sid]["runs"]
        assert (runs, doc["steps"][sid]["output"] is not None) == (
            (1, True) if status == "completed" else (0, False)), sid
    if expected["join"] == "completed":
        assert doc["steps"]["join"]["output"] == {"only-a": expected["only-a"],
                                                  "a-or-b": expected["a-or-b"]}
    # the run's output: the last step in manifest order that completed
    last = [s for s in ("decide", "only-a", "a-or-b", "join", "after-only-a")
            if (s == "decide" or expected[s] == "completed")][-1]
    assert doc["output"] == doc["steps"][last]["output"]


def test_when_matches_the_action_given_at_resume(project: Project) -> None:
    project.workflow("review", """
        steps:
          - {id: review, wait: true}
          - id: ship
            when: {review: [approved, fine]}
          - id: redo
            needs: [review]
            when: {review: rejected}
        """, "def ship(ctx):\n    return 'shipped'\n\ndef redo(ctx):\n    return 'redone'\n")
    for action, ship, redo in (("fine", "completed", "skipped"),
                               ("rejected", "skipped", "completed")):
        run_id = project.json("start", "review")["run_id"]
        doc = project.json("resume", run_id, "--action", action)
        assert doc["steps"]["review"]["action"] == action
        assert (doc["steps"]["ship"]["status"], doc["steps"]["redo"]["status"]) == (ship, redo)
    # no action would run neither: refused (SPEC §2, tests/cli/test_actions.py)
    assert project.run("resume", project.json("start", "review")["run_id"]).code == 2


def test_independent_branches_suspend_together_and_resume_one_at_a_time(project: Project) -> None:
    project.workflow("branches", """
        steps:
          - {id: left, wait: true}
          - {id: right, wait: true, needs: []}
          - {id: nap, sleep: 1h, needs: []}
          - id: both
            needs: [left, right]
        """, """
        def both(ctx):
            return [ctx.steps["left"].output, ctx.steps["right"].output]
        """)
    doc = project.json("start", "branches")
    run_id = doc["run_id"]
    # a run with both suspended and waiting steps is `suspended`
    assert doc["status"] == "suspended"
    assert [s["step"] for s in doc["suspended"]] == ["left", "right"]
    assert [(w["step"], w["kind"]) for w in doc["waiting"]] == [("nap", "sleep")]
    for entry in doc["suspended"]:  # no timeout key: the default is 24 hours, then cancel
        assert _seconds(entry["since"], entry["deadline"]) == 86400
        assert entry["on_timeout"] == "cancel"
    before = project.snapshots()
    ambiguous = project.run("resume", run_id, "--data", "1")
    assert ambiguous.code == 2
    assert "left" in ambiguous.stderr and "right" in ambiguous.stderr
    assert "--step" in ambiguous.stderr
    assert project.snapshots() == before
    sleeping = project.run("resume", run_id, "--step", "nap")
    assert sleeping.code == 3 and "not suspended" in sleeping.stderr
    assert project.snapshots() == before
    doc = project.json("resume", run_id, "--step", "right", "--data", '"R"')
    assert doc["status"] == "suspended"
    assert [s["step"] for s in doc["suspended"]] == ["left"]
    assert doc["steps"]["both"]["status"] == "pending"
    doc = project.json("resume", run_id, "--data", '"L"')  # one left: --step is optional
    assert doc["status"] == "waiting"  # only the sleep remains
    assert doc["steps"]["both"]["output"] == ["L", "R"]
    assert [w["step"] for w in doc["waiting"]] == ["nap"]


# -- wait and sleep steps -----------------------------------------------------------------------


def test_a_wait_step_has_no_code_and_its_output_is_the_resume_data(project: Project) -> None:
    project.workflow("waiter", """
        steps:
          - {id: gate, wait: true, timeout: 2h, on_timeout: resume, actions: [go]}
          - id: after
        """, """
        def after(ctx):
            g = ctx.steps["gate"]
            return [g.output, g.resume_data, g.suspend_data, g.action, g.status, g.runs]
        """)
    doc = project.json("start", "waiter")
    entry = doc["suspended"][0]
    assert (entry["step"], entry["path"], entry["on_timeout"]) == ("gate", ["gate"], "resume")
    assert _seconds(entry["since"], entry["deadline"]) == 7200
    assert doc["steps"]["gate"]["runs"] == 1
    done = project.json("resume", doc["run_id"], "--data", '{"ok": [1, 2]}', "--action", "go")
    gate = done["steps"]["gate"]
    assert gate["output"] == gate["resume_data"] == {"ok": [1, 2]}
    assert gate["runs"] == 1  # resuming does not execute it again
    assert done["output"] == [{"ok": [1, 2]}, {"ok": [1, 2]}, None, "go", "completed", 1]


def test_sleep_steps_record_their_due_time_in_the_state(project: Project) -> None:
    project.workflow("naps", """
        steps:
          - {id: nap, sleep: 1h30m}
          - {id: until, sleep_until: "2099-01-01T00:00:00Z", needs: []}
          - {id: past, sleep_until: "2000-01-01T00:00:00Z", needs: []}
        """)
    doc = project.json("start", "naps")
    assert doc["steps"]["past"]["status"] == "completed"  # already due: no pause
    assert doc["status"] == "waiting"
    waiting = {w["step"]: w for w in doc["waiting"]}
    assert _seconds(doc["steps"]["nap"]["started_at"], waiting["nap"]["due_at"]) == 5400
    assert waiting["until"]["due_at"].startswith("2099-01-01T00:00:00")
    assert {w["kind"] for w in waiting.values()} == {"sleep"}
    shown = project.json("show", doc["run_id"])
    assert shown["waiting"] == doc["waiting"]
    stored = project.store().load(doc["run_id"])
    assert {sid: stored.steps[sid].pause["due_at"] for sid in ("nap", "until")} == {
        sid: waiting[sid]["due_at"] for sid in ("nap", "until")}
    assert stored.next_due() == waiting["nap"]["due_at"]  # what tick visits the run at


@pytest.mark.parametrize(("written", "due"), [
    ("2099-01-01T09:00:00Z", "2099-01-01T09:00:00.000Z"),  # YAML: an aware timestamp
    ("2099-01-01T09:00:00+02:00", "2099-01-01T07:00:00.000Z"),  # taken to UTC
    ("2099-01-01 09:00:00.5", "2099-01-01T09:00:00.500Z"),  # no offset: UTC, as YAML says
    ("2099-01-01", "2099-01-01T00:00:00.000Z"),  # a YAML date: its midnight UTC
    ('"2099-01-01"', "2099-01-01T00:00:00.000Z"),  # ...as the same text in quotes
])
def test_sleep_until_takes_an_unquoted_yaml_timestamp(project: Project, written: str, due: str) -> None:
    project.workflow("later", f"steps:\n  - id: nap\n    sleep_until: {written}\n")
    assert project.run("validate", "later").code == 0
    doc = project.json("start", "later")
    assert doc["status"] == "waiting" and doc["waiting"][0]["due_at"] == due
    assert project.json("show", doc["run_id"])["waiting"][0]["due_at"] == due  # read again
    assert project.json("tick", "--now", due)["advanced"][0]["step"] == "nap"
    assert project.json("show", doc["run_id"])["status"] == "completed"


@pytest.mark.parametrize(("written", "kind"), [("5", "an integer"), ("[2099-01-01]", "a list"),
                                               ("null", "nothing")])
def test_sleep_until_of_another_kind_is_refused_in_words(project: Project, written: str,
                                                         kind: str) -> None:
    path = project.workflow("later", f"steps:\n  - id: nap\n    sleep_until: {written}\n")
    out = project.run("validate", "later")
    assert out.code == 2
    assert out.stderr.strip() == (f"error: {path}: step 'nap': key 'sleep_until': must be an "
                                  f"ISO-8601 time, such as 2030-01-01T09:00:00Z, not {kind}")


@pytest.mark.parametrize(("duration", "seconds"), [
    ("500ms", 0.5), ("10s", 10), ("5m", 300), ("2h", 7200), ("7d", 604800), ("1h30m", 5400),
    ("90", 90), (45, 45), ("1d2h3m4s", 93784),
])
def test_durations_in_the_manifest(project: Project, duration: str | int, seconds: float) -> None:
    project.workflow("d", f"steps:\n  - {{id: gate, wait: true, timeout: {json.dumps(duration)}}}\n")
    entry = project.json("start", "d")["suspended"][0]
    assert _seconds(entry["since"], entry["deadline"]) == seconds


def test_the_python_api_takes_a_timedelta_and_duration_strings(project: Project) -> None:
    project.workflow("d", "steps: [{id: ask}, {id: nap, needs: []}]\n", """
        from datetime import timedelta

        def ask(ctx):
            ctx.flow.suspend(timeout=timedelta(minutes=90))

        def nap(ctx):
            ctx.flow.sleep("1h30m")
        """)
    doc = project.json("start", "d")
    entry = doc["suspended"][0]
    assert _seconds(entry["since"], entry["deadline"]) == 5400
    assert abs(_seconds(doc["steps"]["nap"]["started_at"], doc["waiting"][0]["due_at"])
               - 5400) < 1


def test_the_output_key_chooses_the_run_output(project: Project) -> None:
    project.workflow("out", """
        output: middle
        steps: [{id: first}, {id: middle}, {id: last}]
        """, """
        def first(ctx):
            return "first"

        def middle(ctx):
            return "middle"

        def last(ctx):
            return "last"
        """)
    assert project.json("start", "out")["output"] == "middle"


# -- schemas ------------------------------------------------------------------------------------

SCHEMAS = """
input_schema:
  type: object
  required: [order]
  properties:
    order:
      type: object
      properties: {qty: {type: integer, minimum: 1}}
steps:
  - id: gate
    wait: true
    resume_schema:
      type: object
      required: [ok]
      properties: {ok: {type: boolean}}
  - id: produce
    output_schema: {type: object, required: [total]}
    suspend_schema: {type: object, properties: {question: {type: string}}}
"""
SCHEMAS_PY = """
def produce(ctx):
    mode = ctx.input.get("mode")
    if mode == "bad-suspend":
        ctx.flow.suspend(data={"question": 42})
        return {"total": 1}
    if mode == "bad-output":
        return {"sum": 1}
    if mode == "good-suspend":
        ctx.flow.suspend(data={"question": "why?"})
    return {"total": ctx.input["order"]["qty"]}
"""


def test_input_schema_is_checked_at_start_with_the_json_path(project: Project) -> None:
    project.workflow("schemas", SCHEMAS, SCHEMAS_PY)
    for bad, path in (('{"order": {"qty": 0}}', '"order.qty"'), ("{}", '"order"'),
                      ('{"order": {"qty": "x"}}', '"order.qty"')):
        out = project.run("start", "schemas", "--input", bad)
        assert out.code == 2, out
        assert path in out.stderr and "input" in out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
        assert not project.state.exists()  # nothing written


def test_resume_schema_is_checked_before_anything_is_written(project: Project) -> None:
    project.workflow("schemas", SCHEMAS, SCHEMAS_PY)
    run_id = project.json("start", "schemas", "--input", '{"order": {"qty": 2}}')["run_id"]
    before = project.snapshots()
    out = project.run("resume", run_id, "--data", '{"ok": "yes"}')
    assert out.code == 2
    assert '"ok" must be true or false' in out.stderr and "gate" in out.stderr
    assert project.snapshots() == before  # snapshot, history and index bytes unchanged
    done = project.json("resume", run_id, "--data", '{"ok": true}')
    assert done["status"] == "completed" and done["output"] == {"total": 2}


@pytest.mark.parametrize(("mode", "what"), [("bad-suspend", "suspend data"),
                                            ("bad-output", "output")])
def test_suspend_and_output_schemas_fail_the_step(project: Project, mode: str, what: str) -> None:
    project.workflow("schemas", SCHEMAS, SCHEMAS_PY)
    run_id = project.json("start", "schemas", "--input",
                          json.dumps({"order": {"qty": 2}, "mode": mode}))["run_id"]
    out = project.run("resume", run_id, "--data", '{"ok": true}', "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["steps"]["produce"]["status"] == "failed"
    assert doc["error"]["step"] == "produce"
    assert what in doc["error"]["message"] and "produce" in doc["error"]["message"]
    assert ('"question"' if mode == "bad-suspend" else "total") in doc["error"]["message"]
    assert doc["suspended"] == []


def test_valid_suspend_data_is_kept_and_shown(project: Project) -> None:
    project.workflow("schemas", SCHEMAS, SCHEMAS_PY)
    run_id = project.json("start", "schemas", "--input",
                          json.dumps({"order": {"qty": 3}, "mode": "good-suspend"}))["run_id"]
    doc = project.json("resume", run_id, "--data", '{"ok": true}')
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["suspend_data"] == {"question": "why?"}
    assert doc["steps"]["produce"]["suspend_data"] == {"question": "why?"}
    assert doc["steps"]["produce"]["output"] == {"total": 3}


# -- the ctx table ------------------------------------------------------------------------------

CTX = """
steps:
  - {id: first, actions: [go]}
  - {id: gate, wait: true, actions: [opened]}
  - id: asker
  - id: report
"""
CTX_PY = """
def first(ctx):
    ctx.flow.route("go")
    return {"input": ctx.input, "run_id": ctx.run_id, "workflow": ctx.workflow,
            "step": ctx.step, "runs": ctx.run.runs, "context": ctx.run.context,
            "callback_request": ctx.run.callback_request, "steps": sorted(ctx.steps)}

def asker(ctx):
    links = ctx.flow.suspend(data={"q": "more?"}, timeout="3h", on_timeout="fail")
    attrs = [links.resume_url, links.cancel_url, links.resume_command, links.cancel_command]
    return {"links": dict(links), "attrs": attrs}

def report(ctx):
    out = {}
    for sid in ("first", "gate", "asker"):
        e = ctx.steps[sid]
        out[sid] = {k: e[k] for k in ("output", "resume_data", "suspend_data", "action",
                                       "status", "runs")}
        assert getattr(e, "output") == e["output"]
    return out
"""


def test_the_ctx_table_and_suspend_links(project: Project) -> None:
    project.workflow("ctxw", CTX, CTX_PY)
    doc = project.json("start", "ctxw", "--input", '{"n": 7}', "--run-id", "ctx-1")
    first = doc["steps"]["first"]["output"]
    assert first == {"input": {"n": 7}, "run_id": "ctx-1", "workflow": "ctxw", "step": "first",
                     "runs": 1, "context": None, "callback_request": None,
                     "steps": ["asker", "first", "gate", "report"]}
    doc = project.json("resume", "ctx-1", "--data", '{"g": 1}', "--action", "opened")
    assert doc["status"] == "suspended"
    asker = doc["steps"]["asker"]
    # the return value is the output while the step is suspended
    assert asker["status"] == "suspended" and asker["output"]["attrs"]
    links = asker["output"]["links"]
    assert set(links) == {"resume_url", "cancel_url", "resume_command", "cancel_command"}
    assert asker["output"]["attrs"] == [links["resume_url"], links["cancel_url"],
                                        links["resume_command"], links["cancel_command"]]
    assert links["resume_url"].startswith("http://127.0.0.1:8787/runs/ctx-1/steps/asker/resume?token=")
    assert links["cancel_url"].startswith("http://127.0.0.1:8787/runs/ctx-1/steps/asker/cancel?token=")
    assert "resume ctx-1 --step asker" in links["resume_command"]
    assert links["cancel_command"].endswith("cancel ctx-1")
    entry = doc["suspended"][0]
    assert entry["resume_url"] == links["resume_url"]
    assert entry["resume_command"] == links["resume_command"]
    assert entry["on_timeout"] == "fail" and _seconds(entry["since"], entry["deadline"]) == 3 * 3600
    assert entry["suspend_data"] == {"q": "more?"}
    done = project.json("resume", "ctx-1", "--step", "asker", "--data", '"yes"')
    assert done["status"] == "completed"
    assert done["steps"]["asker"]["runs"] == 1  # the suspended step does not execute again
    assert done["output"] == {
        "first": {"output": first, "resume_data": None, "suspend_data": None, "action": "go",
                  "status": "completed", "runs": 1},
        "gate": {"output": {"g": 1}, "resume_data": {"g": 1}, "suspend_data": None,
                 "action": "opened", "status": "completed", "runs": 1},
        "asker": {"output": asker["output"], "resume_data": "yes", "suspend_data": {"q": "more?"},
                  "action": None, "status": "completed", "runs": 1},
    }


def test_base_url_comes_from_the_environment(project: Project,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WFRUN_BASE_URL", "https://flows.example.com/")
    project.workflow("ctxw", CTX, CTX_PY)
    run_id = project.json("start", "ctxw")["run_id"]
    doc = project.json("resume", run_id)
    assert doc["suspended"][0]["resume_url"].startswith(
        f"https://flows.example.com/runs/{run_id}/steps/asker/resume?token=")


def test_rerun_returns_links_and_the_output_is_the_latest_return_value(project: Project) -> None:
    project.workflow("poll", "steps: [{id: poll}]\n", """
        def poll(ctx):
            if ctx.run.runs < 3:
                links = ctx.flow.rerun("10s", context={"seen": ctx.run.runs})
                return {"runs": ctx.run.runs, "links": dict(links), "url": links.resume_url}
            return {"runs": ctx.run.runs, "context": ctx.run.context}
        """)
    doc = project.json("start", "poll")
    out = doc["steps"]["poll"]["output"]
    assert doc["status"] == "waiting" and out["runs"] == 1
    wait = doc["waiting"][0]
    assert (wait["kind"], wait["runs"], wait["max_retries"]) == ("rerun", 1, 10)
    assert out["url"] == out["links"]["resume_url"] == wait["resume_url"]
    assert wait["resume_command"] == out["links"]["resume_command"]
    tick = project.run("tick", "--now", wait["due_at"])
    assert tick.code == 0
    doc = project.json("show", doc["run_id"])
    assert doc["steps"]["poll"]["output"]["runs"] == 2  # the latest execution's return value
    done = project.json("resume", doc["run_id"])  # a resume reruns it at once
    assert done["status"] == "completed"
    assert done["output"] == {"runs": 3, "context": {"seen": 2}}


def test_flow_exit_ends_the_run_and_skips_the_rest(project: Project) -> None:
    project.workflow("quit", """
        steps:
          - id: check
          - {id: gate, wait: true}
          - id: never
        """, """
        def check(ctx):
            if ctx.input.get("stop"):
                ctx.flow.exit("nothing to do")
            return "checked"

        def never(ctx):
            return "ran"
        """)
    doc = project.json("start", "quit", "--input", '{"stop": true}')
    assert doc["status"] == "completed"
    assert doc["output"] == "checked"
    assert doc["steps"]["gate"]["status"] == "skipped"
    assert doc["steps"]["never"]["status"] == "skipped"
    assert doc["suspended"] == []
    history = project.json("show", doc["run_id"])["history"]
    assert any(e["type"] == "completed" and e.get("reason") == "nothing to do" for e in history)
    assert project.json("start", "quit")["status"] == "suspended"  # without exit, it goes on


def test_ctx_log_records_are_kept_in_history(project: Project) -> None:
    project.workflow("logs", "steps: [{id: talk}]\n", """
        def talk(ctx):
            ctx.log.info("hello %s", ctx.input["who"])
            ctx.log.warning("careful")
            ctx.log.debug("details")
            return "talked"
        """)
    run_id = project.json("start", "logs", "--input", '{"who": "ann"}')["run_id"]
    history = project.json("show", run_id)["history"]
    logs = [(e["step"], e["level"], e["message"]) for e in history if e["type"] == "log"]
    assert logs == [("talk", "info", "hello ann"), ("talk", "warning", "careful"),
                    ("talk", "debug", "details")]
    assert all(set(e) >= {"at", "type", "step"} for e in history)
    human = project.run("show", run_id)
    assert "hello ann" in human.stdout


def test_async_handlers_are_awaited(project: Project) -> None:
    project.workflow("aio", "steps: [{id: fetch}, {id: gate}]\n", """
        import asyncio

        async def fetch(ctx):
            await asyncio.sleep(0)
            return {"got": ctx.input["x"] * 2}

        async def gate(ctx):
            await asyncio.sleep(0)
            ctx.flow.suspend(data=ctx.steps["fetch"].output)
            return "asked"
        """)
    doc = project.json("start", "aio", "--input", '{"x": 21}')
    assert doc["steps"]["fetch"]["output"] == {"got": 42}
    assert doc["status"] == "suspended"
    assert doc["suspended"][0]["suspend_data"] == {"got": 42}
    assert doc["steps"]["gate"]["output"] == "asked"


# -- how a step fails ---------------------------------------------------------------------------

TWO_PAUSES = """
from wfrun.errors import FlowError

def twice(ctx):
    first, second = ctx.input["calls"]
    calls = {"suspend": lambda: ctx.flow.suspend(), "rerun": lambda: ctx.flow.rerun("1m"),
             "sleep": lambda: ctx.flow.sleep("1m"),
             "sleep_until": lambda: ctx.flow.sleep_until("2099-01-01T00:00:00Z")}
    calls[first]()
    if ctx.input.get("swallow"):
        try:
            calls[second]()
        except FlowError:
            pass
        return "swallowed"
    calls[second]()
    return "unreachable"
"""


@pytest.mark.parametrize(("calls", "swallow"), [
    (["suspend", "rerun"], False), (["rerun", "suspend"], False), (["sleep", "suspend"], False),
    (["suspend", "sleep_until"], False), (["suspend", "suspend"], False),
    (["suspend", "rerun"], True),
])
def test_two_pause_calls_in_one_execution_fail_the_step(project: Project, calls: list[str],
                                                        swallow: bool) -> None:
    project.workflow("twice", "steps: [{id: twice}, {id: after}]\n",
                     TWO_PAUSES + "\ndef after(ctx):\n    return 1\n")
    out = project.run("start", "twice", "--json", "--input",
                      json.dumps({"calls": calls, "swallow": swallow}))
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["error"]["step"] == "twice" and doc["error"]["type"] == "FlowError"
    assert f"flow.{calls[1]}()" in doc["error"]["message"]
    assert doc["suspended"] == [] and doc["waiting"] == []
    assert doc["steps"]["after"]["status"] == "cancelled"


@pytest.mark.parametrize(("value", "type_name"), [
    ("{1, 2}", "set"), ("object()", "object"), ("{'when': __import__('datetime').date.today()}",
                                                 "dict"), ("float('nan')", "float"),
])
def test_non_json_output_fails_the_step_naming_the_type(project: Project, value: str,
                                                        type_name: str) -> None:
    project.workflow("odd", "steps: [{id: odd}]\n", f"def odd(ctx):\n    return {value}\n")
    out = project.run("start", "odd", "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed" and doc["steps"]["odd"]["status"] == "failed"
    assert doc["error"]["step"] == "odd"
    assert "not JSON-serialisable" in doc["error"]["message"]
    assert f"(a {type_name})" in doc["error"]["message"]
    stored = project.store().load(doc["run_id"])  # the failed run was stored, and reads back
    assert (stored.status, stored.steps["odd"].status) == ("failed", "failed")
    assert f"(a {type_name})" in stored.steps["odd"].error["message"]


def test_an_exception_fails_the_run_with_step_type_and_message(project: Project) -> None:
    project.workflow("boom", "steps: [{id: ok}, {id: boom}, {id: after}]\n", """
        def ok(ctx):
            return 1

        def boom(ctx):
            raise KeyError("missing thing")

        def after(ctx):
            return 2
        """)
    out = project.run("start", "boom", "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["status"] == "failed"
    assert doc["error"] == {"traceback": ANY, "step": "boom", "type": "KeyError",
                            "message": "'missing thing'"}
    assert doc["steps"]["boom"]["error"] == doc["error"]
    assert doc["steps"]["ok"]["status"] == "completed"
    assert doc["steps"]["after"]["status"] == "cancelled"
    history = project.json("show", doc["run_id"])["history"]
    failed = [e for e in history if e["type"] == "step_failed"]
    assert len(failed) == 1 and "Traceback" in failed[0]["traceback"]
    assert 'raise KeyError("missing thing")' in failed[0]["traceback"]
    assert history[-1]["type"] == "failed"
    human = project.run("start", "boom")
    assert human.code == 1
    assert "KeyError" in human.stdout and "Traceback" not in human.stdout + human.stderr
    assert project.run("resume", doc["run_id"]).code == 3  # a failed run is finished


@pytest.mark.parametrize(("body", "kind"), [("import sys; sys.exit(3)", "SystemExit"),
                                          ("raise ValueError('bad value')", "ValueError"),
                                          ("ctx.steps['nope']", "KeyError")])
def test_whatever_a_step_raises_fails_the_run_not_wfrun(project: Project, body: str,
                                                         kind: str) -> None:
    project.workflow("raiser", "steps: [{id: raiser}]\n", f"def raiser(ctx):\n    {body}\n")
    out = project.cli("start", "raiser", "--json")
    assert out.code == 1, out.stderr
    doc = out.json()
    assert doc["status"] == "failed" and doc["error"]["type"] == kind
    assert "Traceback" not in out.stderr


def test_retry_records_the_backoff_due_time(project: Project) -> None:
    project.workflow("flaky", """
        steps:
          - id: call
            retry: {max_attempts: 2, delay: 90s}
        """, "def call(ctx):\n    raise RuntimeError('down')\n")
    doc = project.json("start", "flaky")
    assert doc["status"] == "waiting"
    wait = doc["waiting"][0]
    assert (wait["step"], wait["kind"], wait["runs"]) == ("call", "retry", 1)
    assert abs(_seconds(doc["steps"]["call"]["started_at"], wait["due_at"]) - 90) < 1
    assert doc["steps"]["call"]["error"]["message"] == "down"
    assert project.json("list")[0]["next_due"] == wait["due_at"]


def _seconds(start: str, end: str) -> float:
    from datetime import datetime

    def parse(text: str) -> Any:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))

    return round((parse(end) - parse(start)).total_seconds(), 3)


# -- what step code holds is its own ------------------------------------------------------------


def test_step_code_changing_what_it_was_given_or_returned_changes_nothing_stored(
        project: Project) -> None:
    """Steps get copies of the run's data, and what they return is copied as it is returned:
    changing either in place afterwards (in the same process) never reaches the state."""
    project.workflow("shared", """
        steps:
          - id: one
          - id: two
          - id: three
        """, """
        KEPT = {"items": [1]}

        def one(ctx):
            ctx.input["added"] = "by one"     # the run's input is not changed
            return KEPT                       # stored as it is now: {"items": [1]}

        def two(ctx):
            ctx.steps["one"].output["items"].append("by two")
            KEPT["items"].append("later")     # one's stored output keeps its value
            if ctx.run.runs == 1:
                ctx.flow.rerun(0, KEPT)       # context stored as it is when two returns
                KEPT["items"].append("before return")
            return ctx.run.context

        def three(ctx):
            return {"input": ctx.input, "one": ctx.steps["one"].output,
                    "two": ctx.steps["two"].output}
        """)
    doc = project.json("start", "shared", "--input", '{"given": 1}')
    assert doc["status"] == "waiting"
    done = project.json("tick", "--now", "2099-01-01T00:00:00Z")
    run = project.json("show", doc["run_id"])
    assert run["status"] == "completed", done
    assert run["input"] == {"given": 1}
    assert run["steps"]["one"]["output"] == {"items": [1]}
    context = {"items": [1, "later", "before return"]}
    assert run["steps"]["two"]["output"] == context
    assert run["steps"]["three"]["output"] == {
        "input": {"given": 1}, "one": {"items": [1]}, "two": context}


def test_ctx_run_and_step_exports_are_read_only(project: Project) -> None:
    """`ctx.run` and `ctx.steps[...]` cannot be reassigned: the step fails, saying so."""
    project.workflow("ro", """
        steps:
          - id: first
          - id: second
          - id: third
        """, """
        def first(ctx):
            return 1

        def second(ctx):
            try:
                ctx.steps["first"].output = 2
            except AttributeError as exc:
                return str(exc)

        def third(ctx):
            ctx.run.runs = 5
        """)
    out = project.run("start", "ro", "--json")
    assert out.code == 1, out.stderr
    run = out.json()
    assert run["steps"]["first"]["output"] == 1
    assert run["steps"]["second"]["output"] == "StepExports is read-only: cannot set 'output'"
    assert "RunInfo is read-only: cannot set 'runs'" in run["steps"]["third"]["error"]["message"]
