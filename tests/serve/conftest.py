"""A `wfrun serve` server on a free loopback port, started in-process for each test (package named
`serve`, not `http`, so it cannot shadow the standard library)."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from conftest import Project

from wfrun.clock import SystemClock
from wfrun.engine import Engine
from wfrun.http import WfrunServer
from wfrun.model import Run
from wfrun.store.file import FileStore

APPROVAL = """
    name: approval
    steps:
      - id: ask
        handler: ask
      - id: approve
        wait: true
        resume_schema:
          type: object
          required: [approved]
          properties:
            approved: {type: boolean, title: Approved}
            reviewer: {type: string, description: Who decided}
            level: {enum: [low, high]}
            amount: {type: number}
      - id: pay
        needs: [approve]
        when: {approve: approved}
      - id: reject
        needs: [approve]
        when: {approve: rejected}
      - id: done
        needs: [pay, reject]
"""
APPROVAL_PY = """
def ask(ctx):
    return {"question": "<script>alert(1)</script> pay?"}

def pay(ctx):
    return {"paid": True, "by": ctx.steps["approve"].output}

def reject(ctx):
    return {"paid": False}

def done(ctx):
    return {"decision": ctx.steps["approve"].action, "data": ctx.steps["approve"].output}
"""
SUSPEND = """
    name: suspend-code
    steps:
      - id: request
      - id: after
"""
SUSPEND_PY = """
def request(ctx):
    ctx.flow.suspend(data={"document": "<b>report.pdf</b>", "question": "Publish?"})
    return {"asked": True}

def after(ctx):
    return {"got": ctx.steps["request"].resume_data, "action": ctx.steps["request"].action}
"""
CALLBACK = """
    name: callback
    steps:
      - id: job
        resume_schema: {type: object, required: [status], properties: {status: {type: string}}}
      - id: use
"""
CALLBACK_PY = """
def job(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1h", {"n": 1}, 1)
        return {"submitted": True}
    return {"request": ctx.run.callback_request, "context": ctx.run.context}

def use(ctx):
    return ctx.steps["job"].output
"""


@dataclass
class Response:
    """What one HTTP request got back."""

    status: int
    headers: Any
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def http(url: str, method: str = "GET", body: bytes | None = None,
         headers: dict[str, str] | None = None) -> Response:
    """One real HTTP request with urllib; error statuses are returned, not raised."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return Response(resp.status, resp.headers, resp.read())
    except urllib.error.HTTPError as exc:
        return Response(exc.code, exc.headers, exc.read())


def post_json(url: str, value: Any, headers: dict[str, str] | None = None) -> Response:
    """POST a JSON body."""
    return http(url, "POST", json.dumps(value).encode(),
                {"Content-Type": "application/json", **(headers or {})})


class Server:
    """A running server and helpers to reach the project's runs through it."""

    def __init__(self, project: Project, httpd: WfrunServer) -> None:
        self.project = project
        self.httpd = httpd
        self.base = f"http://127.0.0.1:{httpd.server_port}"

    def load(self, run_id: str) -> Run:
        return FileStore(str(self.project.state)).load(run_id)

    def wait_until_settled(self, run_id: str, timeout: float = 10.0) -> Run:
        """Poll until the run is no longer running and its worker has let its claim go: the
        snapshot says "completed" before the worker has finished its bookkeeping (the history's
        last events, the status index, the due entry), all done before the claim is released."""
        store = FileStore(str(self.project.state))
        deadline = time.monotonic() + timeout
        while True:
            run = store.load(run_id)
            settled = run.status != "running" and not store.is_claimed(run_id)
            if settled or time.monotonic() > deadline:
                return run
            time.sleep(0.02)

    def start(self, workflow: str, input: str = "{}") -> dict[str, Any]:
        doc: dict[str, Any] = self.project.json("start", workflow, "--input", input)
        return doc


@contextlib.contextmanager
def running_server(project: Project, monkeypatch: pytest.MonkeyPatch,
                   **options: Any) -> Iterator[Server]:
    """A server on a free loopback port for `project` (`options` go to WfrunServer)."""
    holder: dict[str, str] = {}

    def engine() -> Engine:
        return Engine(FileStore(str(project.state)), SystemClock(),
                      workflows_dir=str(project.workflows), base_url=holder["base"])

    httpd = WfrunServer("127.0.0.1", 0, engine, **{"workers": 2, **options})
    holder["base"] = f"http://127.0.0.1:{httpd.server_port}"
    monkeypatch.setenv("WFRUN_BASE_URL", holder["base"])  # what `start` puts in links
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(project, httpd)
    finally:
        httpd.shutdown()
        httpd.close()
        thread.join(5)


@pytest.fixture
def server(project: Project, monkeypatch: pytest.MonkeyPatch) -> Iterator[Server]:
    """Workflows `approval`, `suspend-code` and `callback`, and a server on a free port."""
    project.workflow("approval", APPROVAL, APPROVAL_PY)
    project.workflow("suspend-code", SUSPEND, SUSPEND_PY)
    project.workflow("callback", CALLBACK, CALLBACK_PY)
    with running_server(project, monkeypatch) as running:
        yield running
