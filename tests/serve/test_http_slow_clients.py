"""Issue 18.6: headers that trickle are cut at a deadline, and idle or slow connections from
one client cannot take the slots of everyone else (real sockets, short deadlines)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from contextlib import ExitStack, suppress
from typing import Any

import pytest
from conftest import Project

from .conftest import running_server


def _trickle_head(port: int, seconds: float, step: float = 0.1) -> tuple[bytes, float]:
    """Send a request line, then a header one byte at a time; return what the server said and
    how long it kept the connection open."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        sock.settimeout(step)
        answer = b""
        while time.monotonic() - started < seconds:
            try:
                sock.sendall(b"X")
            except OSError:
                break
            try:
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            answer += chunk
        return answer, time.monotonic() - started


def _read_all(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    parts = []
    while chunk := sock.recv(4096):
        parts.append(chunk)
    return b"".join(parts)


def test_a_head_that_trickles_is_cut_with_408_at_its_deadline(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(project, monkeypatch, header_timeout=0.5) as server:
        answer, held = _trickle_head(server.httpd.server_port, seconds=5)
        assert answer.startswith(b"HTTP/1.0 408"), answer
        assert held < 2.5
        # a client that says nothing at all is dropped the same way
        with socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as idle:
            started = time.monotonic()
            assert _read_all(idle).startswith(b"HTTP/1.0 408")  # then closed
            assert time.monotonic() - started < 2.5
        # and a quick client is served as before
        reply = urlopen_json(server.base + "/healthz")
        assert reply == {"ok": True}


def test_a_body_that_trickles_is_cut_at_its_deadline(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(project, monkeypatch, body_timeout=0.5) as server, \
            socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as sock:
        sock.sendall(b"POST /runs/x/steps/y/resume HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        started = time.monotonic()
        sock.settimeout(0.1)
        closed = False
        while time.monotonic() - started < 5 and not closed:
            try:
                sock.sendall(b" ")
                closed = sock.recv(100) == b""
            except TimeoutError:
                continue
            except OSError:
                closed = True
        assert closed and time.monotonic() - started < 2.5


def test_idle_connections_of_one_client_do_not_starve_another(
    project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    with running_server(project, monkeypatch, max_connections=8, max_per_client=4,
                        header_timeout=30) as server, ExitStack() as stack:
        port = server.httpd.server_port
        idle = [stack.enter_context(socket.create_connection(("127.0.0.1", port), timeout=5))
                for _ in range(8)]  # one client opens every slot and says nothing
        refused = 0
        for sock in idle:
            sock.settimeout(0.3)
            with suppress(TimeoutError):
                refused += sock.recv(100).startswith(b"HTTP/1.0 503")
        assert refused == 4  # its connections beyond its share were refused at once
        other = stack.enter_context(socket.create_connection(
            ("127.0.0.1", port), timeout=5, source_address=("127.0.0.2", 0)))
        other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = _read_all(other)
        assert answer.startswith(b"HTTP/1.0 200") and b'{"ok": true}' in answer


def test_serve_takes_its_deadlines_from_the_environment(project: Project) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "wfrun", *project.base_args(), "serve", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, cwd=project.root,
        env={**os.environ, "WFRUN_HEADER_TIMEOUT": "0.5"},
    )
    try:
        assert proc.stdout is not None
        match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", proc.stdout.readline())
        assert match
        answer, held = _trickle_head(int(match[1]), seconds=5)
        assert answer.startswith(b"HTTP/1.0 408") and held < 2.5
    finally:
        proc.terminate()
        proc.wait(10)


def test_a_bad_deadline_is_refused_with_exit_2(project: Project) -> None:
    out = project.cli("serve", "--port", "0", env={"WFRUN_HEADER_TIMEOUT": "soon"})
    assert out.code == 2 and "header-timeout" in out.stderr


def urlopen_json(url: str) -> Any:
    """GET a URL and parse its JSON body."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:
        return json.loads(resp.read())


@pytest.mark.parametrize("length", ["²", "١٢", "1e3", "-1", " ", "9" * 40])
def test_a_content_length_that_is_not_ascii_digits_gets_400(
    project: Project, monkeypatch: pytest.MonkeyPatch, length: str
) -> None:
    with running_server(project, monkeypatch) as server, \
            socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as sock:
        sock.sendall(f"POST /runs/x/steps/y/resume HTTP/1.1\r\nHost: x\r\n"
                     f"Content-Length: {length}\r\n\r\n".encode())
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.0 400"), answer
    assert b"Content-Length header must be the body's size in bytes" in answer


def test_a_bad_max_payload_is_a_clear_error(project: Project) -> None:
    for args in (("serve", "--port", "0"), ("start", "x", "--input", "{}")):
        out = project.cli(*args, env={"WFRUN_MAX_PAYLOAD": "²"})
        assert out.code == 2, (args, out)
        assert "WFRUN_MAX_PAYLOAD must be a whole number of bytes" in out.stderr
        assert "Traceback" not in out.stderr
