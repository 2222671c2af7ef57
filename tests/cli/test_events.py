"""Issue 21.3: events. `ctx.flow.wait_for_event(name, timeout, schema)`, `ctx.flow.event_url`,
`wfrun send RUN EVENT` (SPEC §3, §5): a waiting step takes the event in the same state change;
an event sent before anything waits for it is kept in the run's inbox, in order, and each is
taken by exactly one wait. Driven through the CLI (in-process, and real processes where they
race); time moves only with `tick --now`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from datetime import datetime, timedelta
from typing import Any

import pytest
from conftest import REPO, Project

from wfrun.store._snapshot import render_snapshot
from wfrun.store.file import FileStore

TWO_WAITS = """
    name: two-waits
    steps:
      - id: gate
        wait: true
      - id: first
        needs: [gate]
      - id: second
        needs: [first]
      - id: done
        needs: [second]
"""
TWO_WAITS_PY = """
def first(ctx):
    ctx.flow.wait_for_event("item")
    return {"first": ctx.run.runs}

def second(ctx):
    ctx.flow.wait_for_event("item")
    return {"second": ctx.run.runs}

def done(ctx):
    return [ctx.steps["first"].resume_data, ctx.steps["second"].resume_data]
"""
WAITER = """
    name: waiter
    steps:
      - id: wait
      - id: after
"""
WAITER_PY = """
import os

def wait(ctx):
    kwargs = ctx.input.get("kwargs", {})
    ctx.flow.wait_for_event("go", **kwargs)
    return {"url": ctx.flow.event_url("go")}

def after(ctx):
    return {"got": ctx.steps["wait"].resume_data, "output": ctx.steps["wait"].output}
"""


def shift(iso: str, seconds: float) -> str:
    moment = datetime.fromisoformat(iso.replace("Z", "+00:00")) + timedelta(seconds=seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def use_example(project: Project) -> None:
    for suffix in (".yaml", ".py"):
        shutil.copy(REPO / "workflows" / f"payment-order{suffix}", project.workflows)


def start(project: Project, workflow: str, input: Any = None, run_id: str = "r1") -> dict[str, Any]:
    args = ["start", workflow, "--run-id", run_id]
    if input is not None:
        args += ["--input", json.dumps(input)]
    doc: dict[str, Any] = project.json(*args)
    return doc


def send(project: Project, run_id: str, name: str, data: Any = None) -> dict[str, Any]:
    args = ["send", run_id, name] + (["--data", json.dumps(data)] if data is not None else [])
    doc: dict[str, Any] = project.json(*args)
    return doc


# -- the example: payment-order ---------------------------------------------------------------


def test_payment_sent_before_the_order_waits_is_kept_then_taken(project: Project) -> None:
    use_example(project)
    doc = start(project, "payment-order", {"order": "o-1", "amount": 42})
    assert doc["steps"]["pack"]["status"] == "suspended"  # await-payment does not wait yet
    url = doc["steps"]["invoice"]["output"]["callback_url"]
    assert url.startswith("http://127.0.0.1:8787/runs/r1/events/payment-received?token=")
    # The provider reports the payment while the parcel is still being packed (a real process).
    out = project.cli("send", "r1", "payment-received", "--data",
                      '{"amount": 42, "reference": "pay-1"}')
    assert out.code == 0, out.stderr
    assert out.stdout.startswith("Event 'payment-received' kept in the inbox of run r1 (1 kept)")
    shown = project.json("show", "r1")
    assert shown["status"] == "suspended"
    assert [(e["kind"], e["name"], e["data"], e["source"]) for e in shown["inbox"]] == [
        ("event", "payment-received", {"amount": 42, "reference": "pay-1"}, "cli")]
    # Packing is done: await-payment waits, takes the kept payment in that same change, ships.
    done = project.json("resume", "r1", "--data", '{"parcel": "p-1"}')
    assert done["status"] == "completed", done
    assert done["output"] == {"order": "o-1", "parcel": "p-1", "paid": 42, "reference": "pay-1"}
    assert done["steps"]["await-payment"]["resume_data"] == {"amount": 42, "reference": "pay-1"}
    assert done["steps"]["await-payment"]["output"] == {"order": "o-1", "awaiting": 42}
    assert "inbox" not in done
    history = project.json("show", "r1")["history"]
    waited = [e for e in history if e.get("step") == "await-payment"
              and e["type"] in ("suspended", "resumed")]
    assert [(e["type"], e.get("event")) for e in waited] == [
        ("suspended", "payment-received"), ("resumed", "payment-received")]
    at = history.index(waited[0])  # one state change: nothing between the pause and the take
    assert history[at + 1] == waited[1]


def test_payment_sent_while_the_order_waits_resumes_it(project: Project) -> None:
    use_example(project)
    start(project, "payment-order", {"order": "o-2", "amount": 10})
    doc = project.json("resume", "r1", "--data", '{"parcel": "p-2"}')
    assert doc["status"] == "suspended"
    [wait] = doc["suspended"]
    assert (wait["step"], wait["event"]) == ("await-payment", "payment-received")
    assert wait["event_url"] == doc["steps"]["invoice"]["output"]["callback_url"]
    assert wait["resume_url"] == wait["event_url"]
    assert wait["event_schema"]["required"] == ["amount", "reference"]
    assert wait["resume_command"] == (
        f"wfrun --state-dir {project.state} send r1 payment-received --data "
        "'{\"amount\": 0, \"reference\": \"...\"}'")
    human = project.run("show", "r1")
    assert "⏸ await-payment waits for event 'payment-received' since" in human.stdout
    assert f"    send:   wfrun --state-dir {project.state} send r1 payment-received --data" \
        in human.stdout
    # Sent now, through a real process: taken at once, and the run goes on to ship.
    out = project.cli("send", "r1", "payment-received", "--data",
                      '{"amount": 10, "reference": "pay-2"}')
    assert out.code == 0, out.stderr
    assert out.stdout.startswith("Event 'payment-received' taken by step 'await-payment' of "
                                 "run r1.\nRun r1 (payment-order) is completed.")
    final = project.json("show", "r1")
    assert final["output"]["reference"] == "pay-2"


def test_a_short_payment_fails_the_order(project: Project) -> None:
    use_example(project)
    start(project, "payment-order", {"order": "o-3", "amount": 50})
    project.json("resume", "r1", "--data", '{"parcel": "p-3"}')
    out = project.run("send", "r1", "payment-received", "--data",
                      '{"amount": 20, "reference": "pay-3"}')
    assert out.code == 1
    assert "order o-3 is paid 20 of 50; not shipped" in out.stdout


# -- buffered events: in order, each taken once ------------------------------------------------


def test_events_sent_first_are_taken_in_order_by_one_wait_each(project: Project) -> None:
    project.workflow("two-waits", TWO_WAITS, TWO_WAITS_PY)
    start(project, "two-waits")
    first = send(project, "r1", "item", "a")
    assert first["sent"] == {"event": "item", "status": "kept", "step": None}
    second = send(project, "r1", "item", "b")
    assert [e["data"] for e in second["inbox"]] == ["a", "b"]
    human = project.run("show", "r1").stdout
    assert human.count("✉ item kept since") == 2
    done = project.json("resume", "r1", "--data", "{}")
    assert done["status"] == "completed"
    assert done["output"] == ["a", "b"]  # the oldest to the first wait, the next to the next
    assert "inbox" not in done
    taken = [(e["step"], e["sent_at"]) for e in project.json("show", "r1")["history"]
             if e["type"] == "resumed" and e.get("event")]
    assert [step for step, _ in taken] == ["first", "second"]
    assert taken[0][1] < taken[1][1]


def test_a_third_event_stays_kept_after_both_waits(project: Project) -> None:
    project.workflow("two-waits", TWO_WAITS, TWO_WAITS_PY)
    start(project, "two-waits")
    for data in ("a", "b", "c"):
        send(project, "r1", "item", data)
    doc = project.json("resume", "r1", "--data", "{}")
    assert doc["output"] == ["a", "b"]
    assert [(e["name"], e["data"]) for e in doc["inbox"]] == [("item", "c")]  # kept, shown
    assert project.run("send", "r1", "item", "--data", '"d"').code == 3  # completed: no more


def test_the_first_step_in_manifest_order_takes_an_event_both_wait_for(project: Project) -> None:
    project.workflow("both", """
        name: both
        steps:
          - id: left
          - id: right
            needs: []
          - id: join
            needs: [left, right]
    """, """
def left(ctx):
    ctx.flow.wait_for_event("go")

def right(ctx):
    ctx.flow.wait_for_event("go")

def join(ctx):
    return [ctx.steps["left"].resume_data, ctx.steps["right"].resume_data]
""")
    doc = start(project, "both")
    assert [w["step"] for w in doc["suspended"]] == ["left", "right"]
    assert send(project, "r1", "go", 1)["sent"] == {"event": "go", "status": "taken",
                                                     "step": "left"}
    assert send(project, "r1", "go", 2)["output"] == [1, 2]


def test_an_event_sent_while_its_step_executes_is_taken_when_it_waits(project: Project) -> None:
    project.workflow("slow", """
        name: slow
        steps:
          - id: work
          - id: after
    """, """
import os, time

def work(ctx):
    open(ctx.input["started"], "w").close()
    deadline = time.monotonic() + 20
    while not os.path.exists(ctx.input["go"]) and time.monotonic() < deadline:
        time.sleep(0.01)
    ctx.flow.wait_for_event("done")
    return {"worked": True}

def after(ctx):
    return ctx.steps["work"].resume_data
""")
    started, go = project.root / "started", project.root / "go"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "start", "slow", "--run-id", "r1",
         "--input", json.dumps({"started": str(started), "go": str(go)}), "--json"],
        cwd=project.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert started.exists()
        sent = send(project, "r1", "done", {"result": 7})  # `work` is executing right now
        assert sent["sent"]["status"] == "kept"
        assert sent["steps"]["work"]["status"] == "running"
        go.touch()
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert json.loads(out)["output"] == {"result": 7}


def test_an_early_event_failing_the_waits_schema_is_discarded_into_history(
        project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    project.workflow("gated", """
        name: gated
        steps:
          - id: gate
            wait: true
          - id: wait
            needs: [gate]
          - id: after
    """, WAITER_PY)
    start(project, "gated", {"kwargs": {"schema": {"type": "integer"}}})
    send(project, "r1", "go", "not a number")
    send(project, "r1", "go", 5)
    doc = project.json("resume", "r1", "--step", "gate")
    assert doc["status"] == "completed"
    assert doc["output"]["got"] == 5
    [dropped] = [e for e in project.json("show", "r1")["history"] if e["type"] == "discarded"]
    assert dropped["step"] == "wait"
    assert dropped["data"] == "not a number"
    assert dropped["event"] == "go"
    assert "sent before step 'wait' waited for it" in dropped["reason"]


# -- refusals: nothing is written -----------------------------------------------------------


def test_data_failing_the_schema_is_refused_and_nothing_is_written(project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    schema = {"type": "object", "required": ["ok"], "properties": {"ok": {"type": "boolean"}}}
    start(project, "waiter", {"kwargs": {"schema": schema}})
    before = project.snapshots()
    out = project.run("send", "r1", "go", "--data", '{"ok": "yes"}')
    assert out.code == 2
    assert out.stderr.startswith("error: data of event 'go' (step 'wait' waits for it) is not "
                                 "valid")
    assert project.snapshots() == before
    pending = project.json("pending")
    assert [(p["step"], p["event"], p["resume_schema"]) for p in pending] == [
        ("wait", "go", schema)]
    assert pending[0]["resume_command"] == (
        f"wfrun --state-dir {project.state} send r1 go --data '{{\"ok\": true}}'")
    human = project.run("pending").stdout
    assert "(event go)" in human and "    send:   wfrun --state-dir" in human
    assert send(project, "r1", "go", {"ok": True})["status"] == "completed"


def test_finished_unknown_and_invalid_runs_and_names(project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    start(project, "waiter")
    project.json("cancel", "r1")
    before = project.snapshots()
    finished = project.run("send", "r1", "go", "--data", "1")
    assert finished.code == 3
    assert "run r1 is cancelled" in finished.stderr and "takes no events" in finished.stderr
    assert project.snapshots() == before
    unknown = project.run("send", "nope", "go")
    assert unknown.code == 4
    assert "no run nope" in unknown.stderr
    assert project.run("send", "bad/id", "go").code == 2
    bad_name = project.run("send", "r1", "no spaces")
    assert bad_name.code == 2
    assert "event name 'no spaces' is not valid" in bad_name.stderr
    assert project.run("send", "r1", "go", "--data", "{not json").code == 2
    assert project.snapshots() == before


def test_a_resume_of_an_event_wait_says_to_send_the_event(project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    start(project, "waiter")
    before = project.snapshots()
    out = project.run("resume", "r1", "--step", "wait", "--data", "{}")
    assert out.code == 3
    assert "waits for event 'go', not for a resume; send it with 'wfrun send r1 go" in out.stderr
    assert project.snapshots() == before


# -- what the step sees and may do ----------------------------------------------------------


def test_resume_data_is_the_event_and_the_output_the_return_value(project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    doc = start(project, "waiter")
    url = doc["steps"]["wait"]["output"]["url"]
    assert url == doc["suspended"][0]["event_url"]
    done = send(project, "r1", "go", {"n": 1})
    assert done["output"] == {"got": {"n": 1}, "output": {"url": url}}
    assert done["steps"]["wait"]["resume_data"] == {"n": 1}


@pytest.mark.parametrize(("code", "problem"), [
    ("ctx.flow.suspend()\n    ctx.flow.wait_for_event('go')",
     "called flow.wait_for_event() after flow.suspend() in the same execution"),
    ("ctx.flow.wait_for_event('go')\n    ctx.flow.sleep('1h')",
     "called flow.sleep() after flow.wait_for_event() in the same execution"),
    ("ctx.flow.wait_for_event('go', schema={'type': 'nope'})",
     "schema of wait_for_event('go'): invalid JSON Schema"),
    ("ctx.flow.wait_for_event('a b')", "event name 'a b' is not valid"),
    ("ctx.flow.wait_for_event('go', on_timeout='later')", "on_timeout must be one of"),
])
def test_misuse_fails_the_step(project: Project, code: str, problem: str) -> None:
    project.workflow("misuse", "name: misuse\nsteps:\n  - id: s\n",
                     f"def s(ctx):\n    {code}\n")
    out = project.run("start", "misuse", "--json")
    assert out.code == 1
    error = out.json()["error"]
    assert error["type"] == "FlowError"
    assert problem in error["message"]


def test_a_foreach_iteration_cannot_wait_for_an_event(project: Project) -> None:
    project.workflow("each", """
        name: each
        steps:
          - id: items
          - id: one
            foreach: items
    """, """
def items(ctx):
    return [1]

def one(ctx):
    ctx.flow.wait_for_event("go")
""")
    out = project.run("start", "each", "--json")
    assert out.code == 1
    assert "is a foreach iteration, which cannot wait for an event" in out.json()["error"][
        "message"]


# -- deadlines ------------------------------------------------------------------------------


@pytest.mark.parametrize(("on_timeout", "status"), [
    ("cancel", "cancelled"), ("resume", "completed"), ("fail", "failed")])
def test_tick_handles_an_event_waits_deadline(project: Project, on_timeout: str,
                                              status: str) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    doc = start(project, "waiter", {"kwargs": {"timeout": "2h", "on_timeout": on_timeout}})
    [wait] = doc["suspended"]
    assert wait["deadline"] == shift(wait["since"], 7200)
    assert wait["on_timeout"] == on_timeout
    early = project.run("tick", "--now", shift(wait["deadline"], -1), "--json")
    assert early.json()["advanced"] == []
    out = project.run("tick", "--now", wait["deadline"], "--json")
    assert out.json()["advanced"] == [
        {"run_id": "r1", "step": "wait", "reason": "timeout", "status": status}]
    final = project.json("show", "r1")
    assert final["status"] == status
    if on_timeout == "resume":
        assert final["output"] == {"got": None, "output": final["steps"]["wait"]["output"]}
    if on_timeout == "fail":
        assert final["error"]["type"] == "TimeoutError"
        assert "received no event 'go' before its deadline" in final["error"]["message"]
    assert project.run("send", "r1", "go").code == 3


def test_the_default_deadline_is_a_day_and_the_steps_keys_apply(project: Project) -> None:
    project.workflow("waiter", WAITER, WAITER_PY)
    [wait] = start(project, "waiter")["suspended"]
    assert (wait["deadline"], wait["on_timeout"]) == (shift(wait["since"], 86400), "cancel")
    project.workflow("keyed", """
        name: keyed
        steps:
          - id: wait
            timeout: 3d
            on_timeout: fail
          - id: after
    """, WAITER_PY)
    [keyed] = start(project, "keyed", run_id="r2")["suspended"]
    assert (keyed["deadline"], keyed["on_timeout"]) == (shift(keyed["since"], 3 * 86400), "fail")


# -- the inbox in the snapshot ----------------------------------------------------------------


def test_a_kept_event_is_in_the_snapshot_and_a_damaged_one_is_reported(project: Project) -> None:
    """A kept event is stored with the run; one damaged in the file store's snapshot file (and
    resealed) is reported by the shape check."""
    project.workflow("two-waits", TWO_WAITS, TWO_WAITS_PY)
    start(project, "two-waits")
    send(project, "r1", "item", {"x": 1})
    run = FileStore(str(project.state)).load("r1")
    [entry] = run.inbox
    assert {k: entry[k] for k in ("kind", "name", "data", "source")} == {
        "kind": "event", "name": "item", "data": {"x": 1}, "source": "cli"}
    path = project.state / "runs" / "r1.json"
    envelope = json.loads(path.read_bytes())
    del envelope["run"]["inbox"][0]["name"]  # resealed: only the shape check can see it
    path.write_bytes(render_snapshot(envelope["schema_version"], envelope["due"], envelope["run"]))
    out = project.run("show", "r1")
    assert out.code == 5
    assert "inbox[0].name is missing" in out.stderr


# -- racing senders -------------------------------------------------------------------------


def test_racing_senders_one_takes_the_wait_the_others_are_kept_in_order(project: Project) -> None:
    project.workflow("race", """
        name: race
        steps:
          - id: wait
          - id: hold
            wait: true
            needs: [wait]
    """, """
def wait(ctx):
    ctx.flow.wait_for_event("go")
""")
    start(project, "race")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    procs = [subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "send", "r1", "go", "--data",
         str(n), "--json"], cwd=project.root, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True) for n in range(8)]
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        results.append(json.loads(out)["sent"])
    taken = [n for n, sent in enumerate(results) if sent["status"] == "taken"]
    assert len(taken) == 1
    assert results[taken[0]]["step"] == "wait"
    final = project.json("show", "r1")
    assert final["status"] == "suspended"
    assert [w["step"] for w in final["suspended"]] == ["hold"]
    assert final["steps"]["wait"]["resume_data"] == taken[0]
    kept = [e["data"] for e in final["inbox"]]
    assert sorted(kept) == [n for n in range(8) if n != taken[0]]
    # In the order they were sent (each time is taken under the run's lock): the inbox keeps
    # them in that order, and the one taken was the first to be recorded.
    assert len([e for e in final["history"] if e["type"] == "event_sent"]) == 8
    times = [e["accepted_at"] for e in final["inbox"]]
    assert times == sorted(times)
    [resumed] = [e for e in final["history"] if e["type"] == "resumed" and e["step"] == "wait"]
    assert resumed["sent_at"] <= times[0]


# -- a child run waits --------------------------------------------------------------------------

GATED = """
    name: gated
    steps:
      - id: gate
        wait: true
      - id: pay
      - id: done
"""
GATED_PY = """
def pay(ctx):
    ctx.flow.wait_for_event("paid", schema={"type": "object", "required": ["n"],
                                            "properties": {"n": {"type": "integer"}}})

def done(ctx):
    return ctx.steps["pay"].resume_data
"""
PARENT = """
    name: parent
    steps:
      - id: sub
        workflow: gated
      - id: after
"""
PARENT_PY = "def after(ctx):\n    return ctx.steps['sub'].output\n"


def test_an_event_sent_to_a_run_goes_to_the_child_run_that_waits_for_it(project: Project) -> None:
    project.workflow("gated", GATED, GATED_PY)
    project.workflow("parent", PARENT, PARENT_PY)
    start(project, "parent", run_id="p1")
    # nothing waits for it yet, anywhere: kept by the run it was sent to
    kept = send(project, "p1", "paid", {"n": 1})
    assert kept["sent"] == {"event": "paid", "status": "kept", "step": None}
    assert [e["name"] for e in kept["inbox"]] == ["paid"]
    project.json("resume", "p1", "--step", "sub/gate")
    assert [p["step"] for p in project.json("pending")] == ["sub/pay"]
    # the child's wait decides the schema, named by its path from the run sent to
    bad = project.cli("send", "p1", "paid", "--data", '{"n": "x"}')
    assert bad.code == 2 and "step 'sub/pay' waits for it" in bad.stderr, bad.stderr
    out = project.cli("send", "p1", "paid", "--data", '{"n": 4}')
    assert out.code == 0, out.stderr
    assert out.stdout.startswith("Event 'paid' taken by step 'sub/pay' of run p1."), out.stdout
    done = project.json("show", "p1")
    assert done["status"] == "completed" and done["output"] == {"n": 4}, done
    assert [e["name"] for e in done["inbox"]] == ["paid"]  # the early one stays the parent's
    child = project.json("show", "p1--sub")
    assert child["steps"]["pay"]["resume_data"] == {"n": 4}
    assert [e["type"] for e in child["history"]].count("event_sent") == 1
