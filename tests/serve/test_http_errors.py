"""What `wfrun serve` says when serving a connection goes wrong: a client that resets its
connection mid-request is one quiet log line, a bug in a handler is logged with its traceback
through the `wfrun.http` logger; the server answers the next client either way."""

from __future__ import annotations

import json
import logging
import socket
import struct
import time
import urllib.request
from pathlib import Path

import pytest
from conftest import Project

from wfrun.http import _server

from .conftest import Server, http, post_json, running_server


def _healthy(base: str) -> bool:
    with urllib.request.urlopen(base + "/healthz", timeout=5) as resp:
        return bool(json.loads(resp.read()) == {"ok": True})


def _reset_mid_request(port: int) -> None:
    """Send half a request head, then close with a TCP reset (SO_LINGER 0)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall(b"POST /runs/r/steps/s/resume HTTP/1.1\r\nContent-Length: 10\r\n\r\n{")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def test_a_client_that_resets_its_connection_is_one_line_not_a_traceback(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="wfrun.http")
    with running_server(project, monkeypatch) as server:
        _reset_mid_request(server.httpd.server_port)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and not any(
                "ended early" in r.getMessage() for r in caplog.records):
            time.sleep(0.02)
        assert _healthy(server.base)
    ended = [r for r in caplog.records if "ended early" in r.getMessage()]
    assert ended and ended[0].levelno == logging.INFO and ended[0].exc_info is None
    assert "127.0.0.1" in ended[0].getMessage()
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception occurred" not in err


def test_a_bug_in_a_handler_is_logged_with_its_traceback_and_the_server_goes_on(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    real = _server.Handler._dispatch

    def broken(self: _server.Handler) -> None:
        if self.path.startswith("/boom"):
            raise RuntimeError("a bug")
        real(self)

    monkeypatch.setattr(_server.Handler, "_dispatch", broken)
    caplog.set_level(logging.INFO, logger="wfrun.http")
    with running_server(project, monkeypatch) as server:
        with pytest.raises(OSError):  # the connection ends without an answer
            urllib.request.urlopen(server.base + "/boom", timeout=5)
        assert _healthy(server.base)
    bugs = [r for r in caplog.records if r.getMessage().startswith("error while serving")]
    assert len(bugs) == 1 and bugs[0].levelno == logging.ERROR
    assert bugs[0].exc_info is not None and isinstance(bugs[0].exc_info[1], RuntimeError)
    assert "Exception occurred" not in capfd.readouterr().err  # not socketserver's bare print


SLOW = """
    name: slow
    steps:
      - id: approve
        wait: true
      - id: work
"""
SLOW_PY = """
import os, time

def work(ctx):
    print("from the step")
    gate = os.environ["SLOW_GATE"]
    for _ in range(200):  # until the test has made its request (10 s at most)
        if os.path.exists(gate):
            break
        time.sleep(0.05)
    return {"done": True}
"""


def test_the_servers_own_output_while_a_step_runs_is_not_kept_as_the_steps(
    project: Project, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    """A step executing in a worker thread has stdout and stderr routed to its log; the access
    log another request writes meanwhile, from a thread of the server's own, stays the
    server's (stderr) and is not kept as the step's output."""
    from .conftest import post_json

    gate = tmp_path / "gate"
    monkeypatch.setenv("SLOW_GATE", str(gate))
    project.workflow("slow", SLOW, SLOW_PY)
    with running_server(project, monkeypatch) as server:
        doc = server.start("slow")
        url = (doc["suspended"] or doc["waiting"])[0]["resume_url"]
        assert post_json(url, {}).status == 202
        deadline = time.monotonic() + 10
        while server.load(doc["run_id"]).steps["work"].status != "running":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        assert _healthy(server.base)  # its access-log line is written while the step runs
        gate.touch()
        run = server.wait_until_settled(doc["run_id"])
    assert run.status == "completed"
    texts = [r["text"] for r in project.json("logs", doc["run_id"])]
    assert "from the step" in texts
    assert not [t for t in texts if "/healthz" in t], texts
    assert "GET /healthz" in capfd.readouterr().err


def test_a_workflow_whose_code_fails_to_import_is_500_with_details_only_in_the_log(
    server: Server, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="wfrun.http")
    doc = server.start("approval")
    module = server.project.workflows / "approval.py"
    module.write_text(module.read_text() + "\nimport os\nSECRET = os.environ['WFRUN_NO_SUCH']\n")
    url = doc["suspended"][0]["resume_url"] + "&action=approved"
    for reply in (post_json(url, {"approved": True}), http(url + "&approved=true", "POST")):
        assert reply.status == 500, reply.text  # worth sending again once the deploy is fixed
        assert "cannot be loaded" in reply.json()["error"]
        assert "WFRUN_NO_SUCH" not in reply.text and str(module) not in reply.text
    assert "WFRUN_NO_SUCH" in caplog.text  # the server's log says why
    assert server.load(doc["run_id"]).status == "suspended"  # the data was not taken


def test_the_access_log_hides_a_token_however_its_name_is_encoded(
    server: Server, capfd: pytest.CaptureFixture[str],
) -> None:
    doc = server.start("approval")
    url = doc["suspended"][0]["resume_url"]
    token = url.split("token=")[1].split("&")[0]
    for name in ("token", "%74oken", "%74%6Fk%65n"):
        encoded = url.replace("token=", f"{name}=")
        assert http(encoded).status == 200  # the server reads it as the token
    err = capfd.readouterr().err
    assert err.count("=...") >= 3 and token not in err, err


@pytest.mark.parametrize(("head", "status"), [
    (b"GARBAGE\r\n\r\n", 400),
    (b"GET /healthz HTTP/1.1\r\n" + b"".join(b"X-H%d: 1\r\n" % i for i in range(120)) + b"\r\n",
     431),
])
def test_a_malformed_request_head_gets_a_json_error_with_the_security_headers(
    server: Server, head: bytes, status: int,
) -> None:
    with socket.create_connection(("127.0.0.1", server.httpd.server_port), timeout=5) as sock:
        sock.sendall(head)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head_part, _, body = reply.partition(b"\r\n\r\n")
    assert head_part.split(b"\r\n")[0].split(b" ")[1] == str(status).encode(), reply
    assert b"content-type: application/json" in head_part.lower(), head_part
    assert b"x-content-type-options: nosniff" in head_part.lower(), head_part
    assert "error" in json.loads(body) and reply.count(b"HTTP/1.") == 1


def _raw(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(head)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    return reply


def test_control_characters_a_client_sends_are_escaped_in_the_log(
    server: Server, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # the request line went into the access log as sent: ESC sequences recoloured (or
    # rewrote) the operator's terminal, BEL rang it; escaped as Python 3.12's http.server does
    port = server.httpd.server_port
    assert b" 404 " in _raw(port, b"GET /x\x1b[31mRED\x1b[0m\x07\\\x9b HTTP/1.1\r\n\r\n")
    err = capfd.readouterr().err
    assert '"GET /x\\x1b[31mRED\\x1b[0m\\x07\\\\\\x9b HTTP/1.1" 404' in err, err
    assert not any(c in err for c in "\x1b\x07\x9b")
    # a path logged with an internal error is escaped too
    caplog.set_level(logging.INFO, logger="wfrun.http")

    def broken(request: object) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(server.httpd.callbacks, "handle", broken)
    assert b" 500 " in _raw(port, b"POST /runs/r\x1b[2J/steps/s/resume HTTP/1.1\r\n\r\n")
    logged = [r.getMessage() for r in caplog.records if "internal error" in r.getMessage()]
    assert logged == ["internal error answering /runs/r\\x1b[2J/steps/s/resume"]
    assert "\x1b" not in capfd.readouterr().err


def _parts(reply: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert int(headers["content-length"]) == len(body), reply
    return int(lines[0].split(" ")[1]), headers, body


def test_over_the_per_client_limit_the_503_says_why_and_when_to_send_again(
    project: Project, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # it had `Content-Length: 0` and no body: SPEC §7, error bodies are sentences for people
    with running_server(project, monkeypatch, max_per_client=1, header_timeout=30) as server:
        port = server.httpd.server_port
        with socket.create_connection(("127.0.0.1", port), timeout=5) as held:
            held.sendall(b"GET /healthz HTTP/1.1\r\n")  # holds its address's only slot
            time.sleep(0.2)
            status, headers, body = _parts(_raw(port, b"GET /healthz HTTP/1.1\r\n\r\n"))
    assert (status, headers["retry-after"]) == (503, "5")
    assert headers["content-type"] == "application/json"
    assert headers["x-content-type-options"] == "nosniff"
    assert json.loads(body) == {"error": "your address already holds 1 connection to this "
                                         "server, the most one address may; close some (or let "
                                         "them finish), then send this again in a few seconds"}


def test_the_standard_librarys_own_errors_are_sentences_saying_what_to_do(
    server: Server,
) -> None:
    # a 70 KB URL got {"error": "Request-URI Too Long"}
    port = server.httpd.server_port
    status, _, body = _parts(_raw(port, b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n"))
    assert status == 414
    assert json.loads(body)["error"] == (
        "the request line is over 65536 bytes; send a shorter URL (data goes in the body, up "
        "to WFRUN_MAX_PAYLOAD bytes)")
    status, _, body = _parts(_raw(port, b"GARBAGE\r\n\r\n"))
    assert status == 400
    assert json.loads(body)["error"] == (
        "the request line is not valid HTTP (Bad request syntax ('GARBAGE')); send a method, a "
        "path and the HTTP version, separated by spaces")
    many = b"".join(b"X-H%d: 1\r\n" % i for i in range(120))
    status, _, body = _parts(_raw(port, b"GET /healthz HTTP/1.1\r\n" + many + b"\r\n"))
    assert status == 431 and json.loads(body)["error"].startswith(
        "the request's headers are too long or too many (Too many headers); send at most 100")


FLAKY = """
    name: flaky
    steps:
      - id: ask
        wait: true
      - id: charge
        retry: {max_attempts: 3, delay: 1h}
"""
FLAKY_PY = """
def charge(ctx):
    raise ConnectionError("the bank did not answer")
"""


def test_what_a_run_continued_in_the_background_left_to_say_is_logged(
    project: Project, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
) -> None:
    """The warnings a command prints on stderr (here: the step left waiting for a retry, and
    what it raised) are the server's log lines when the run continues after a 202."""
    caplog.set_level(logging.WARNING, logger="wfrun.http")
    project.workflow("flaky", FLAKY, FLAKY_PY)
    with running_server(project, monkeypatch) as server:
        doc = server.start("flaky")
        answer = post_json(doc["suspended"][0]["resume_url"], {"ok": True})
        assert answer.status == 202
        run = server.wait_until_settled(doc["run_id"])
    assert run.status == "waiting" and run.steps["charge"].failures == 1
    said = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(said) == 1, said
    assert said[0].startswith(f"run {doc['run_id']}: step 'charge' raised ConnectionError: "
                              "the bank did not answer")
    assert "it is retried at" in said[0]
