"""SPEC §3 "Early callbacks are never lost": a resume that arrives while the step that handed
out its link is still executing is kept in the run's inbox and applied when the step pauses.
Real processes throughout: the executing `wfrun start`, racing `wfrun resume` processes, a
`wfrun serve` process, and a kill -9 of the executor between "accepted" and "paused". What the
run looks like in between is read with `wfrun show` in the test's own process (a read takes no
part in the race, and a cold process per look would cost more than the races)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Outcome, Project

HANDOFF = """
    name: handoff
    steps:
      - id: ask
        resume_schema: {type: object, required: [n], properties: {n: {type: integer}}}
      - id: after
"""
# The seeds' pattern: hand the link to a service, then keep working before returning. The
# first execution holds until the test creates the `go` file; a recovered one does not.
HANDOFF_PY = """
import json, os, time
from pathlib import Path

def ask(ctx):
    mode = ctx.input.get("mode", "suspend")
    side = Path(os.environ["HANDOFF_DIR"])
    if mode == "rerun" and ctx.run.runs > 1:
        return {"callback": ctx.run.callback_request, "runs": ctx.run.runs}
    if mode == "ask" and ctx.run.runs > 1:
        return {"answer": ctx.flow.ask()}
    links = ctx.flow.rerun("1h", {"k": 1}, ctx.input.get("max", 10)) if mode == "rerun" \
        else None if mode == "ask" else ctx.flow.suspend()
    with open(side / "attempts", "a") as f:
        f.write(f"{ctx.run.runs}\\n")
    tmp = side / "link.tmp"
    tmp.write_text(json.dumps({"url": links.resume_url, "cancel": links.cancel_url} if links
                              else {}))
    tmp.rename(side / "link")
    deadline = time.monotonic() + 30
    while ctx.run.runs == 1 and not (side / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    if mode == "raise":
        raise ValueError("the service is down")
    if mode == "ask":  # (an ask hands out no link while the step executes)
        return {"answer": ctx.flow.ask(data="which n?")}
    return {"asked": True}

def after(ctx):
    return {"got": ctx.steps["ask"].resume_data}
"""


@pytest.fixture
def handoff(project: Project, tmp_path: Path) -> Iterator[Handoff]:
    project.workflow("handoff", HANDOFF, HANDOFF_PY)
    side = tmp_path / "side"
    side.mkdir()
    h = Handoff(project, side)
    try:
        yield h
    finally:
        for proc in h.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait(10)


class Handoff:
    """The `handoff` workflow run by real processes, with its side directory."""

    def __init__(self, project: Project, side: Path) -> None:
        self.project = project
        self.side = side
        self.env = {**os.environ, "HANDOFF_DIR": str(side)}
        self.procs: list[subprocess.Popen[str]] = []

    def spawn(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wfrun", *self.project.base_args(), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**self.env, **(env or {})}, cwd=self.project.root,
        )
        self.procs.append(proc)
        return proc

    def cli(self, *args: str, env: dict[str, str] | None = None) -> Outcome:
        proc = self.spawn(*args, env=env)
        out, err = proc.communicate(timeout=60)
        return Outcome(proc.returncode, out, err)

    def start(self, mode: str = "suspend", env: dict[str, str] | None = None
              ) -> tuple[subprocess.Popen[str], dict[str, str]]:
        """Start a run in the background; return it once its step has handed out the link."""
        proc = self.spawn_until_link("start", "handoff", "--run-id", "r1", "--input",
                                     json.dumps({"mode": mode}), env=env)
        return proc, json.loads((self.side / "link").read_text())

    def spawn_until_link(self, *args: str,
                         env: dict[str, str] | None = None) -> subprocess.Popen[str]:
        """`wfrun ARGS` in the background, once a step it executes has handed out its link."""
        proc = self.spawn(*args, env=env)
        deadline = time.monotonic() + 30
        while not (self.side / "link").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the step never handed out its link"
            time.sleep(0.01)
        return proc

    def go(self) -> None:
        (self.side / "go").touch()

    def show(self) -> dict[str, Any]:
        """`wfrun show r1 --json`, run in-process (CliRunner)."""
        doc: dict[str, Any] = self.project.json("show", "r1")
        return doc

    def events(self, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.show()["history"] if e["type"] == kind]


def test_a_cli_resume_before_the_step_returns_is_kept_and_applied_once(handoff: Handoff) -> None:
    starter, _ = handoff.start()
    out = handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 1}')
    assert out.code == 0, out
    assert "accepted" in out.stdout and "still executing" in out.stdout
    assert handoff.show()["inbox"][0]["data"] == {"n": 1}  # durable before the step pauses
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.show()
    assert doc["status"] == "completed", doc
    assert doc["steps"]["ask"]["resume_data"] == {"n": 1}
    assert doc["output"] == {"got": {"n": 1}}
    assert "inbox" not in doc
    assert len(handoff.events("accepted")) == 1
    resumed = handoff.events("resumed")
    assert len(resumed) == 1 and resumed[0]["early"] is True


def test_an_early_resume_by_nested_path_reaches_the_child_run_that_is_executing(
        handoff: Handoff) -> None:
    # The parent records its child's id only when the child's first execution pauses: the
    # resume by `sub/ask` must find the child meanwhile, as a resume by its URL does.
    handoff.project.workflow("outer", """
        name: outer
        steps:
          - id: sub
            workflow: handoff
    """)
    starter = handoff.spawn_until_link("start", "outer", "--run-id", "p1")
    for action in ([], ["--action", "ok"]):  # the parent's step holds no links: not kept
        whole = handoff.cli("resume", "p1", "--step", "sub", *action, "--data", '{"n": 1}')
        assert whole.code == 3, whole
        assert "step 'sub' of run p1 is running, not suspended; nothing to resume; to hand " \
            "data to a step of its child run, name it: --step sub/STEP" in whole.stderr
    out = handoff.cli("resume", "p1", "--step", "sub/ask", "--data", '{"n": 2}')
    assert out.code == 0, out
    assert "Resume accepted: step 'sub/ask' of run p1 is still executing" in out.stdout
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.project.json("show", "p1")
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"got": {"n": 2}}
    assert "inbox" not in doc and not [e for e in doc["history"] if e["type"] == "accepted"]


EACH = """
    name: eachoff
    steps:
      - id: items
      - id: ask
        foreach: items
        resume_schema: {type: object, required: [n], properties: {n: {type: integer}}}
      - id: done
"""
EACH_PY = HANDOFF_PY + """
def items(ctx):
    return ["early", "late"]

def done(ctx):
    return ctx.steps["ask"].output
"""


@pytest.mark.parametrize("via", ["cli", "http"])
def test_an_early_resume_of_a_foreach_iteration_is_kept_and_applied(
        handoff: Handoff, via: str) -> None:
    handoff.project.workflow("eachoff", EACH, EACH_PY)
    env = {"WFRUN_BASE_URL": f"http://127.0.0.1:{_free_port()}"} if via == "http" else {}
    if env:
        _serve(handoff, env)
    starter = handoff.spawn_until_link("start", "eachoff", "--run-id", "e1", env=env)
    if via == "cli":
        out = handoff.cli("resume", "e1", "--step", "ask[0]", "--data", '{"n": 8}')
        assert out.code == 0, out
        assert "Resume accepted: step 'ask[0]' of run e1 is still executing" in out.stdout
        again = handoff.cli("resume", "e1", "--step", "ask[0]", "--data", '{"n": 9}')
        assert again.code == 3 and "already has a resume accepted" in again.stderr, again
    else:
        link = json.loads((handoff.side / "link").read_text())
        status, body = _post(link["url"], {"n": 8})
        assert (status, body["status"]) == (202, "accepted"), body
        assert _post(link["url"], {"n": 9})[0] == 409  # one winner per suspension
    handoff.go()  # (and the second iteration, which finds `go`, suspends as usual)
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.project.json("show", "e1")
    assert doc["status"] == "suspended", doc
    assert [it["status"] for it in doc["steps"]["ask"]["iterations"]] == ["completed",
                                                                          "suspended"]
    assert handoff.cli("resume", "e1", "--step", "ask[1]", "--data", '{"n": 1}').code == 0
    doc = handoff.project.json("show", "e1")
    assert doc["status"] == "completed", doc
    assert doc["steps"]["ask"]["iterations"][0]["resume_data"] == {"n": 8}
    resumed = [e for e in doc["history"] if e["type"] == "resumed"]
    assert [(e["step"], e.get("early")) for e in resumed] == [("ask[0]", True), ("ask[1]", None)]


def test_kill_9_after_an_early_callback_to_an_iteration_hands_it_to_the_recovery(
        handoff: Handoff) -> None:
    handoff.project.workflow("eachoff", EACH, EACH_PY)
    starter = handoff.spawn_until_link("start", "eachoff", "--run-id", "e1", "--input",
                                       json.dumps({"mode": "rerun"}))
    assert handoff.cli("resume", "e1", "--step", "ask[0]", "--data", '{"n": 12}').code == 0
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    handoff.go()  # (the second iteration's first run then reruns as usual)
    assert handoff.cli("tick").code == 0
    doc = handoff.project.json("show", "e1")
    first = doc["steps"]["ask"]["iterations"][0]
    assert first["status"] == "completed", doc
    assert first["output"]["runs"] == 2 and first["output"]["callback"]["body"] == {"n": 12}
    history = doc["history"]
    assert not [e for e in history if e["type"] == "discarded"]
    assert [(e["step"], e.get("via")) for e in history if e["type"] == "resumed"] == [
        ("ask[0]", "callback_request")]


def test_an_early_resume_is_checked_before_it_is_kept(handoff: Handoff) -> None:
    starter, _ = handoff.start()
    bad = handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": "one"}')
    assert bad.code == 2, bad
    assert "inbox" not in handoff.show()
    handoff.go()
    assert starter.wait(30) == 0
    assert handoff.show()["status"] == "suspended"  # nothing was kept: it waits as usual


def test_an_early_resume_of_a_rerun_executes_it_again_at_once(handoff: Handoff) -> None:
    starter, _ = handoff.start("rerun")
    unnamed = handoff.cli("resume", "r1", "--data", '{"n": 7}')
    assert unnamed.code == 3 and "--step ask" in unnamed.stderr  # an executing step is named
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 7}').code == 0
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.show()
    assert doc["status"] == "completed", doc
    ask = doc["steps"]["ask"]
    assert ask["runs"] == 2
    assert ask["output"]["callback"]["body"] == {"n": 7}
    assert ask["output"]["callback"]["source"] == "cli"


def test_an_early_resume_of_a_rerun_hands_the_step_the_callback_request_of_spec_2(
        handoff: Handoff) -> None:
    # SPEC §2: `callback_request` is {"body", "headers", "query", "method", "source"}, whether
    # the resume came while the step executed or after it paused; when it came is in history
    starter, _ = handoff.start("rerun")
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 7}').code == 0
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.show()
    callback = doc["steps"]["ask"]["output"]["callback"]
    assert sorted(callback) == ["body", "headers", "method", "query", "source"], callback
    assert callback == {"body": {"n": 7}, "headers": {}, "query": {}, "method": None,
                        "source": "cli"}
    [accepted] = [e for e in doc["history"] if e["type"] == "accepted"]
    [resumed] = [e for e in doc["history"] if e["type"] == "resumed"]
    assert accepted["at"] <= resumed["at"] and resumed["early"] is True


def test_a_second_cli_resume_of_a_rerun_executing_with_the_first_is_refused(
        handoff: Handoff) -> None:
    # Exactly one resume wins per suspension: the rerun's link says so with 409 once the first
    # resume won; `wfrun resume --step` (no link) must not take the second as an early one.
    handoff.project.workflow("poll", "steps:\n  - id: poll\n", """
import os, time
from pathlib import Path

def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1h")
        return "asked"
    go = Path(os.environ["HANDOFF_DIR"]) / "go"
    deadline = time.monotonic() + 30
    while not go.exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    return {"callback": ctx.run.callback_request["body"]}
""")
    assert handoff.cli("start", "poll", "--run-id", "q1").code == 0
    first = handoff.spawn("resume", "q1", "--step", "poll", "--data", '{"n": 1}')
    deadline = time.monotonic() + 30
    while handoff.project.json("show", "q1")["steps"]["poll"]["runs"] < 2:
        assert first.poll() is None and time.monotonic() < deadline, first.communicate()
        time.sleep(0.02)
    second = handoff.cli("resume", "q1", "--step", "poll", "--data", '{"n": 2}')
    assert second.code == 3, second
    assert "step 'poll' of run q1 was already resumed at " in second.stderr
    handoff.go()
    assert first.wait(30) == 0, first.communicate()
    doc = handoff.project.json("show", "q1")
    assert doc["output"] == {"callback": {"n": 1}}
    assert not [e for e in doc["history"] if e["type"] in ("accepted", "discarded")]


def test_data_for_a_step_that_raises_instead_of_pausing_is_discarded_with_the_reason(
        handoff: Handoff) -> None:
    starter, _ = handoff.start("raise")
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 3}').code == 0
    handoff.go()
    assert starter.wait(30) == 1
    doc = handoff.show()
    assert doc["status"] == "failed" and "inbox" not in doc
    [discarded] = handoff.events("discarded")
    assert discarded["data"] == {"n": 3} and "ValueError" in discarded["reason"]


def test_data_for_a_rerun_ignored_at_its_limit_is_discarded_saying_so(handoff: Handoff) -> None:
    starter = handoff.spawn_until_link("start", "handoff", "--run-id", "r1", "--input",
                                       json.dumps({"mode": "rerun", "max": 0}))
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 5}').code == 0
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    [discarded] = handoff.events("discarded")
    assert discarded["data"] == {"n": 5}
    assert discarded["reason"] == ("the step's rerun() was ignored: it had reached its rerun "
                                   "limit (max_retries=0), so the step completed")


GATE = """
    name: gate
    module: handoff.py
    steps:
      - id: ask
      - id: pay
        handler: after
        when: {ask: approved}
      - id: refuse
        handler: after
        when: {ask: rejected}
"""


def test_an_early_resume_with_no_action_for_a_step_that_routed_to_none_is_discarded(
        handoff: Handoff) -> None:
    """Accepted while the step could still route (SPEC §2: an action is checked); the step
    suspended without routing, so the resume would run nothing: it is discarded saying so, and
    the suspension waits for a resume that names an action."""
    handoff.project.workflow("gate", GATE)
    starter = handoff.spawn_until_link("start", "gate", "--run-id", "r1")
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 6}').code == 0
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    doc = handoff.show()
    assert doc["status"] == "suspended" and doc["steps"]["ask"]["status"] == "suspended"
    [discarded] = handoff.events("discarded")
    assert discarded["data"] == {"n": 6} and discarded["action"] is None
    assert discarded["reason"].startswith("it gave no action, and every step after this one "
                                          "runs only for one (when:)")
    assert "approved or rejected" in discarded["reason"]
    late = handoff.cli("resume", "r1", "--step", "ask", "--action", "approved", "--data", "7")
    assert late.code == 0, late
    doc = handoff.show()
    assert doc["status"] == "completed"
    assert [doc["steps"][s]["status"] for s in ("pay", "refuse")] == ["completed", "skipped"]


def test_data_for_a_step_that_asks_instead_of_suspending_is_discarded_saying_so(
        handoff: Handoff) -> None:
    starter = handoff.spawn_until_link("start", "handoff", "--run-id", "r1", "--input",
                                       json.dumps({"mode": "ask"}))
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 8}').code == 0
    handoff.go()
    assert starter.wait(30) == 0, starter.communicate()
    assert handoff.show()["steps"]["ask"]["status"] == "suspended"
    [discarded] = handoff.events("discarded")
    assert discarded["reason"] == ("the step asked (ask #1) instead of suspending; its question "
                                   "takes an answer once it is asked: resume the step again")
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 9}').code == 0
    doc = handoff.show()
    assert doc["status"] == "completed" and doc["steps"]["ask"]["output"] == {"answer": {"n": 9}}


def test_data_for_a_run_cancelled_while_its_step_executes_is_discarded(handoff: Handoff) -> None:
    starter, _ = handoff.start()
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 4}').code == 0
    assert handoff.cli("cancel", "r1").code == 0
    handoff.go()
    starter.wait(30)
    assert handoff.show()["status"] == "cancelled"
    [discarded] = handoff.events("discarded")
    assert discarded["data"] == {"n": 4} and "cancelled" in discarded["reason"]


def test_kill_9_between_accepted_and_paused_applies_the_data_once_after_recovery(
        handoff: Handoff) -> None:
    starter, link = handoff.start()
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 9}').code == 0
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    tick = handoff.cli("tick", "--json")
    assert tick.code == 0, tick
    assert [a["reason"] for a in tick.json()["advanced"]] == ["recovered"]
    doc = handoff.show()
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"got": {"n": 9}}
    assert doc["steps"]["ask"]["runs"] == 2  # the interrupted step executed again
    assert (handoff.side / "attempts").read_text().split() == ["1", "2"]
    assert len(handoff.events("resumed")) == 1 and len(handoff.events("recovered")) == 1
    # the link the dead execution handed out is the recovered one's: now used up
    assert json.loads((handoff.side / "link").read_text())["url"] == link["url"]
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 10}').code == 3


def test_kill_9_after_an_early_callback_hands_it_to_the_recovering_execution(
        handoff: Handoff) -> None:
    """The documented callback pattern reruns only on its first run (`runs == 1`): the
    execution that recovers it (runs 2) would never pause again to take the accepted data, so
    it gets it as ctx.run.callback_request, and the data is taken once, not discarded."""
    starter, _ = handoff.start("rerun")
    assert handoff.cli("resume", "r1", "--step", "ask", "--data", '{"n": 11}').code == 0
    starter.send_signal(signal.SIGKILL)
    starter.wait(10)
    tick = handoff.cli("tick", "--json")
    assert tick.code == 0, tick
    doc = handoff.show()
    assert doc["status"] == "completed", doc
    output = doc["steps"]["ask"]["output"]
    assert output["runs"] == 2 and output["callback"]["body"] == {"n": 11}
    assert output["callback"]["source"] == "cli"
    assert not handoff.events("discarded")
    [resumed] = handoff.events("resumed")
    assert resumed["early"] is True and resumed["via"] == "callback_request"
    assert "inbox" not in doc


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _post(url: str, value: Any) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(value).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), json.loads(exc.read())


def test_an_http_resume_before_the_step_returns_is_acknowledged_as_accepted(
        handoff: Handoff) -> None:
    env = {"WFRUN_BASE_URL": f"http://127.0.0.1:{_free_port()}"}
    _serve(handoff, env)
    starter, link = handoff.start(env=env)
    status, body = _post(link["url"], {"n": "not a number"})
    assert status == 422, body  # checked before it is kept
    status, body = _post(link["url"], {"n": 5})
    assert (status, body["status"]) == (202, "accepted"), body
    assert _post(link["url"], {"n": 6})[0] == 409  # one winner per suspension
    try:  # its description no longer offers it either
        urllib.request.urlopen(link["url"], timeout=30)
        raise AssertionError("GET of a link whose resume was accepted answered 2xx")
    except urllib.error.HTTPError as exc:
        assert exc.code == 409
        assert "already has a resume accepted at" in json.loads(exc.read())["error"]
    handoff.go()
    assert starter.wait(30) == 0
    assert handoff.show()["output"] == {"got": {"n": 5}}
    status, body = _post(link["url"], {"n": 7})  # applied at once when it paused: still used
    assert status == 409 and "was already resumed at" in body["error"], body


def test_the_link_of_a_step_that_raised_after_handing_it_out_says_it_ended(
        handoff: Handoff) -> None:
    env = {"WFRUN_BASE_URL": f"http://127.0.0.1:{_free_port()}"}
    _serve(handoff, env)
    starter, link = handoff.start("raise", env=env)
    handoff.go()
    assert starter.wait(30) == 1
    status, body = _post(link["url"], {"n": 1})
    assert status == 409, body  # a real link of an ended pause, not an unknown one (404)
    assert body["error"] == "run r1 is failed; this link no longer works", body


def _serve(handoff: Handoff, env: dict[str, str]) -> subprocess.Popen[str]:
    port = env["WFRUN_BASE_URL"].rsplit(":", 1)[1]
    server = handoff.spawn("serve", "--port", port, env=env)
    deadline = time.monotonic() + 20
    while True:
        try:
            socket.create_connection(("127.0.0.1", int(port)), timeout=1).close()
            return server
        except OSError:
            assert server.poll() is None, server.communicate()
            assert time.monotonic() < deadline, "wfrun serve did not start listening"
            time.sleep(0.05)


@pytest.mark.parametrize("callers", [1, 16])
def test_racing_callers_over_cli_and_http_get_exactly_one_winner(
        handoff: Handoff, callers: int) -> None:
    env = {"WFRUN_BASE_URL": f"http://127.0.0.1:{_free_port()}"}
    _serve(handoff, env)
    starter, link = handoff.start(env=env)
    results: dict[int, int] = {}  # caller -> 0 (won) or the exit code / HTTP status it got
    lock = threading.Lock()

    def record(n: int, won: bool, code: int) -> None:
        with lock:
            results[n] = 0 if won else code
            if len(results) == max(1, callers // 2):
                handoff.go()  # the step pauses while the other half still race it

    def by_http(n: int) -> None:
        status, body = _post(link["url"], {"n": n})
        if status == 202:
            assert body["status"] in ("accepted", "running", "completed", "suspended"), body
        record(n, status == 202, status)

    def by_cli(n: int) -> None:
        out = handoff.cli("resume", "r1", "--step", "ask", "--data", json.dumps({"n": n}))
        record(n, out.code == 0, out.code)

    threads = [threading.Thread(target=by_http if n % 2 else by_cli, args=(n,))
               for n in range(callers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    handoff.go()
    assert starter.wait(30) == 0
    winners = [n for n, code in results.items() if code == 0]
    assert len(results) == callers and len(winners) == 1, results
    assert all(code in (3, 409) for code in results.values() if code), results
    deadline = time.monotonic() + 20
    while (doc := handoff.show())["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)  # an HTTP winner after the pause continues in the server
    assert doc["status"] == "completed", doc
    assert doc["output"] == {"got": {"n": winners[0]}}
    assert len(handoff.events("resumed")) == 1
    assert (handoff.side / "attempts").read_text().split() == ["1"]
