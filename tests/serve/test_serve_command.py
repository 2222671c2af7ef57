"""Issue 6: the `wfrun serve` command as a real process: where it listens, links, clean stop."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from typing import Any

import pytest
from conftest import Project

from .conftest import APPROVAL, APPROVAL_PY, http, post_json


def _serve(project: Project, *args: str, env: dict[str, str] | None = None) -> Any:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "serve", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=project.root,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    first, second = proc.stdout.readline(), proc.stdout.readline()
    match = re.search(r"listening on (http://127\.0\.0\.1:(\d+))", first)
    assert match, (first, proc.stderr.read() if proc.poll() is not None else "")
    return proc, match[1], first + second


def _stop(proc: Any, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    code: int = proc.wait(timeout=10)
    return code


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_says_where_it_listens_and_stops_cleanly(project: Project, sig: int) -> None:
    proc, url, banner = _serve(project)
    try:
        assert "loopback only" in banner
        assert f"links point to {url}" in banner
        assert json.loads(http(url + "/healthz").body) == {"ok": True}
    finally:
        code = _stop(proc, sig)
    assert code == 0
    assert "Traceback" not in proc.stderr.read()


def test_base_url_sets_what_links_say_and_the_server_answers_them(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Behind a proxy: links say the public base URL; the proxy forwards the path to serve."""
    public = "https://wf.example.com/hooks"
    project.workflow("approval", APPROVAL, APPROVAL_PY)
    proc, url, banner = _serve(project, env={"WFRUN_BASE_URL": public})
    try:
        assert f"links point to {public}" in banner
        monkeypatch.setenv("WFRUN_BASE_URL", public)
        doc = project.json("start", "approval")
        resume_url = doc["suspended"][0]["resume_url"]
        assert resume_url.startswith(f"{public}/runs/{doc['run_id']}/steps/approve/resume?token=")
        forwarded = url + resume_url[len(public):]  # what the proxy would request
        reply = post_json(forwarded + "&action=approved", {"approved": True})
        assert reply.status == 202, reply.text
        deadline = time.monotonic() + 10
        while project.json("show", doc["run_id"])["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        assert _stop(proc) == 0


def test_a_bad_base_url_or_busy_port_is_a_clear_error(project: Project) -> None:
    out = project.cli("serve", "--base-url", "wf.example.com")
    assert out.code == 2 and "must start with http:// or https://" in out.stderr
    proc, url, _ = _serve(project)
    try:
        port = url.rsplit(":", 1)[1]
        busy = project.cli("serve", "--port", port)
        assert busy.code == 2 and f"cannot listen on 127.0.0.1:{port}" in busy.stderr
    finally:
        _stop(proc)
