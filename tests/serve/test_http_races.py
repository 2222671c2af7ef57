"""Issue 6: links under races, ended pauses and a killed server."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from typing import Any

import pytest
from conftest import Project

from wfrun.engine._links import make_token, remember_nonces, token_state
from wfrun.model import MAX_NONCES, Run, StepState

from .conftest import APPROVAL, APPROVAL_PY, Response, Server, http, post_json


def test_concurrent_resumes_with_one_token_get_one_202_and_the_rest_409(server: Server) -> None:
    doc = server.start("approval")
    url = doc["suspended"][0]["resume_url"] + "&action=approved"
    barrier = threading.Barrier(4)
    replies: list[tuple[bool, Response]] = []

    def send(approved: bool) -> None:
        barrier.wait()
        replies.append((approved, post_json(url, {"approved": approved})))

    threads = [threading.Thread(target=send, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert sorted(r.status for _, r in replies) == [202, 409, 409, 409]
    run = server.wait_until_settled(doc["run_id"])
    sent, winner = next((a, r) for a, r in replies if r.status == 202)
    assert winner.json()["run_id"] == doc["run_id"]
    assert run.status == "completed" and run.steps["pay"].runs == 1
    assert run.steps["approve"].resume_data == {"approved": sent}
    resumed = [e for e in server.project.json("show", doc["run_id"])["history"]
               if e["type"] == "resumed"]
    assert len(resumed) == 1


def test_a_burst_of_connections_gets_answers_not_resets(server: Server) -> None:
    doc = server.start("approval")
    url = doc["suspended"][0]["resume_url"] + "&action=approved"
    clients = 60  # more than socketserver's default backlog of 5 ever let through
    barrier = threading.Barrier(clients)
    statuses: list[int | str] = []

    def send() -> None:
        barrier.wait()
        try:
            statuses.append(post_json(url, {"approved": True}).status)
        except OSError as exc:  # a reset by the kernel: no HTTP answer at all
            statuses.append(type(exc).__name__)

    threads = [threading.Thread(target=send) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(statuses) == clients and all(isinstance(s, int) for s in statuses), statuses
    assert statuses.count(202) == 1 and set(statuses) <= {202, 409, 503}, statuses


def test_a_resume_finishing_while_the_server_stops_is_202_and_left_to_tick(
        server: Server) -> None:
    doc = server.start("approval")
    server.httpd.executor.shutdown(wait=True)  # what SIGTERM's close() does first
    reply = post_json(doc["suspended"][0]["resume_url"] + "&action=approved",
                      {"approved": True})
    assert reply.status == 202, reply.text  # recorded: it was a 500
    assert server.load(doc["run_id"]).status == "running"
    advanced = server.project.json("tick")["advanced"]
    assert [a["run_id"] for a in advanced] == [doc["run_id"]]
    assert server.load(doc["run_id"]).status == "completed"


def test_a_link_of_a_timed_out_suspension_gets_409(server: Server) -> None:
    doc = server.start("approval")
    server.project.json("tick", "--now", "2099-01-01T00:00:00Z")  # 24 h passed: cancelled
    reply = post_json(doc["suspended"][0]["resume_url"], {"approved": True})
    assert reply.status == 409 and "is cancelled" in reply.json()["error"]
    assert http(doc["suspended"][0]["cancel_url"], "POST").status == 409


def test_a_rerun_link_dies_when_the_timer_fires_first(server: Server) -> None:
    doc = server.start("callback")
    server.project.json("tick", "--now", "2099-01-01T00:00:00Z")  # the rerun ran without callback
    assert server.load(doc["run_id"]).steps["job"].runs == 2
    reply = post_json(doc["waiting"][0]["resume_url"], {"status": "DONE"})
    assert reply.status == 409 and "no longer works" in reply.json()["error"]


def test_recent_pause_nonces_are_kept_and_bounded() -> None:
    run = Run("r", "w", {}, "t", "t", steps={"s": StepState()})
    for n in range(MAX_NONCES + 3):
        run.steps["s"].pause = {"kind": "suspend", "nonce": f"n{n}"}
        remember_nonces(run)
        remember_nonces(run)  # idempotent
    assert run.steps["s"].nonces == [f"n{n}" for n in range(3, MAX_NONCES + 3)]
    assert Run.from_dict(run.to_dict()).steps["s"].nonces == run.steps["s"].nonces


def test_an_execution_closed_under_way_keeps_its_links_as_ended() -> None:
    from datetime import UTC, datetime

    from wfrun.engine._schedule import close_node

    run = Run("r", "w", {}, "t", "t", steps={"s": StepState(status="running", exec_nonce="e1"),
                                              "p": StepState(status="running", exec_nonce="e2")})
    remember_nonces(run)  # executing: nothing is written for its links on each save
    assert run.steps["s"].nonces == [] and run.steps["p"].nonces == []
    # `p` is closed while executing (the run was cancelled): its links are remembered
    close_node(run.steps["p"], datetime(2026, 1, 1, tzinfo=UTC), "cancelled")
    remember_nonces(run)
    assert run.steps["p"].exec_nonce is None and run.steps["p"].nonces == ["e2"]
    key = b"k" * 32
    token = make_token(key, "resume", "r", "p", "e2")
    assert token_state(key, run, "p", "resume", token) == "ended"
    assert token_state(key, run, "p", "resume", make_token(key, "resume", "r", "p", "e3")) is None


def test_a_server_killed_after_answering_202_loses_nothing(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kill -9 of `wfrun serve` while the accepted run's next step executes: tick recovers it."""
    slow = APPROVAL_PY.replace('def pay(ctx):\n', 'def pay(ctx):\n    import time; time.sleep(30)\n')
    project.workflow("approval", APPROVAL, slow)
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=project.root,
    )
    try:
        assert proc.stdout is not None
        base = proc.stdout.readline().split("listening on ")[1].split(" ")[0]
        monkeypatch.setenv("WFRUN_BASE_URL", base)
        doc: dict[str, Any] = project.json("start", "approval")
        reply = post_json(doc["suspended"][0]["resume_url"] + "&action=approved",
                          {"approved": True, "reviewer": "kim"})
        assert reply.status == 202
        for _ in range(200):  # until the worker is inside the slow step
            if project.json("show", doc["run_id"])["steps"]["pay"]["status"] == "running":
                break
            threading.Event().wait(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    assert project.json("show", doc["run_id"])["status"] == "running"
    project.workflow("approval", APPROVAL, APPROVAL_PY)  # the next attempt is quick
    tick = project.json("tick")
    assert tick["advanced"] == [{"run_id": doc["run_id"], "step": "pay", "reason": "recovered",
                                 "status": "completed"}]
    shown = project.json("show", doc["run_id"])
    assert shown["steps"]["approve"]["resume_data"] == {"approved": True, "reviewer": "kim"}
    assert shown["steps"]["pay"]["runs"] == 2
    assert shown["output"]["decision"] == "approved"


def test_connections_over_the_limit_get_503_and_a_freed_slot_serves_again(project: Project) -> None:
    import socket

    from wfrun.clock import SystemClock
    from wfrun.engine import Engine
    from wfrun.http import WfrunServer
    from wfrun.store.file import FileStore

    def engine() -> Engine:
        return Engine(FileStore(str(project.state)), SystemClock(),
                      workflows_dir=str(project.workflows))

    httpd = WfrunServer("127.0.0.1", 0, engine, max_connections=1)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{httpd.server_port}"
    try:
        with socket.create_connection(("127.0.0.1", httpd.server_port), timeout=5) as slow:
            slow.sendall(b"GET /healthz HTTP/1.1\r\n")  # holds the only slot, headers unfinished
            threading.Event().wait(0.2)
            busy = http(base + "/healthz")
            assert busy.status == 503 and busy.headers["Retry-After"] == "5"
            assert busy.json() == {"error": "the server is already answering 1 connection, the "
                                            "most it takes at once; send this again in a few "
                                            "seconds"}
        for _ in range(50):  # the slow client left: its slot comes back
            if http(base + "/healthz").status == 200:
                break
            threading.Event().wait(0.05)
        else:
            raise AssertionError("the slot was never released")
    finally:
        httpd.shutdown()
        httpd.close()


HANDS_OUT = """
    name: hands-out
    steps:
      - id: ask
      - id: after
"""
HANDS_OUT_PY = """
import json, os, time

def ask(ctx):
    links = ctx.flow.suspend()
    with open(os.environ["LINKS_FILE"] + ".tmp", "w") as out:
        json.dump({"resume": links.resume_url, "cancel": links.cancel_url}, out)
    os.replace(os.environ["LINKS_FILE"] + ".tmp", os.environ["LINKS_FILE"])
    deadline = time.monotonic() + 20
    while not os.path.exists(os.environ["GO_FILE"]) and time.monotonic() < deadline:
        time.sleep(0.02)
    return {"asked": True}

def after(ctx):
    return {}
"""


def test_links_of_a_run_cancelled_while_their_step_executes_get_409(
    server: Server, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the links a still-executing step handed out answered 404 once the run was cancelled
    # (as if they were wrong tokens), and 409 only after the step returned
    import json
    import time

    links_file, go = tmp_path / "links.json", tmp_path / "go"
    monkeypatch.setenv("LINKS_FILE", str(links_file))
    monkeypatch.setenv("GO_FILE", str(go))
    server.project.workflow("hands-out", HANDS_OUT, HANDS_OUT_PY)
    started = threading.Thread(target=server.project.cli, args=(
        "start", "hands-out", "--run-id", "handed", "--json"))
    started.start()
    try:
        deadline = time.monotonic() + 30
        while not links_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        links = json.loads(links_file.read_text())
        assert server.project.run("cancel", "handed").code == 0
        assert server.load("handed").status == "cancelled"
        for url in (links["resume"], links["cancel"]):
            for method in ("GET", "POST"):
                reply = http(url, method, headers={"Accept": "application/json"})
                assert reply.status == 409, (url, method, reply.text)
                assert reply.json()["error"] == "run handed is cancelled; this link no longer works"
        assert not go.exists()  # all of it while the step was still executing
    finally:
        go.touch()
        started.join(30)
    assert server.load("handed").status == "cancelled"
    reply = post_json(links["resume"], {"ok": 1})
    assert reply.status == 409 and "is cancelled" in reply.json()["error"]
