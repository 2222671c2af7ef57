"""The HTTP server of `wfrun serve`: the standard library's ThreadingHTTPServer, hardened.

One thread per connection (a slow client holds only its own thread; at most MAX_CONNECTIONS at
once, and at most MAX_PER_CLIENT from one address, so one client cannot take every slot), a
socket timeout on every read, a deadline for the whole request head and another for the whole
body (enforced by one watchdog thread that cuts the connection, so a client trickling a byte
at a time is dropped too), the body cap enforced from Content-Length before any body byte is
read, chunked bodies refused, and accepted resumes continued by a small pool of background
workers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from wfrun._jsoninput import max_payload
from wfrun._threads import own_thread
from wfrun.engine import Engine
from wfrun.errors import UsageError, WfrunError

from . import _events, _starts
from ._callback import NOT_FOUND, Callbacks, Reply, Request, json_reply
from ._deadlines import Deadlines
from ._logtext import printable, redact
from ._refusals import SECURITY_HEADERS, busy_reply, library_error

ROUTE = re.compile(r"/runs/([^/]+)/steps/([^/]+)/(resume|cancel)")
METHOD = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an HTTP method is a token (RFC 9110)
REQUEST_TIMEOUT = 30.0  # seconds a client may stay silent while sending its request
HEADER_DEADLINE = 10.0  # seconds a client may take to send the request line and headers
BODY_DEADLINE = 60.0  # seconds a client may take to send a whole body
MAX_CONNECTIONS = 128  # connections served at once; more get 503 at once
MAX_PER_CLIENT = 32  # connections from one address at once; more from it get 503 at once
LINGER_BYTES = 4 * 1024 * 1024  # after a 413, read at most this much so the client sees it
logger = logging.getLogger("wfrun.http")


class Handler(BaseHTTPRequestHandler):
    """Routes every method to the link handler; anything else is 404."""

    server: WfrunServer
    timeout = REQUEST_TIMEOUT
    expired = False

    def version_string(self) -> str:
        """The Server header: no Python version."""
        return "wfrun"

    def setup(self) -> None:
        """Start the connection's clock: its request head must arrive within the deadline."""
        super().setup()
        self.server.deadlines.arm(self, self.server.header_timeout)

    def finish(self) -> None:
        """Stop watching the connection, then close it."""
        self.server.deadlines.disarm(self)
        super().finish()

    def expire(self) -> None:
        """Called by the watchdog: the client took too long; make its blocked read return."""
        self.expired = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RD)

    def _timed_out(self) -> None:
        """Answer 408 to a client whose request head did not arrive in time."""
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":  # no whole request line
            self.request_version = "HTTP/1.0"
        self.requestline = getattr(self, "requestline", "")
        self.command = getattr(self, "command", None) or ""
        with contextlib.suppress(OSError):
            self._send(json_reply(408, {"error": "the request line and headers did not arrive "
                                        f"within {self.server.header_timeout:g} seconds"}))
        self.close_connection = True

    def send_error(self, code: int, message: str | None = None,
                   explain: str | None = None) -> None:
        """The standard library's own errors (a malformed request line, too many or too long
        headers) as wfrun's: a JSON body saying what was wrong and what to do, and its
        security headers, not an HTML page; nothing for a head its deadline cut, which gets
        the 408 alone."""
        if self.expired:
            return
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"
        self.requestline = getattr(self, "requestline", "")
        self.command = getattr(self, "command", None) or ""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(json_reply(code, {"error": library_error(code, message)}))

    def handle_one_request(self) -> None:
        """Serve one request; a client that sent nothing before the deadline gets 408."""
        super().handle_one_request()
        if self.expired and not getattr(self, "raw_requestline", b""):
            self._timed_out()

    def parse_request(self) -> bool:
        """Read the request head; a head cut by its deadline gets 408 and nothing else."""
        ok = super().parse_request()
        if self.expired:
            self._timed_out()
            return False
        if ok:  # the body's deadline starts now
            self.server.deadlines.arm(self, self.server.body_timeout)
        return ok

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        if split.path == "/healthz":
            self._send(json_reply(200, {"ok": True}))
            return
        match = ROUTE.fullmatch(split.path)
        start = _starts.ROUTE.fullmatch(split.path) if match is None else None
        sent = _events.ROUTE.fullmatch(split.path) if match is None and start is None else None
        if match is None and start is None and sent is None:
            self._send(NOT_FOUND)
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body = self._read_body(headers)
        self.server.deadlines.disarm(self)  # what follows is the server's own work
        if body is None:
            return
        try:
            if start is not None:
                reply = self.server.starts.handle(
                    _starts.StartRequest(self.command, unquote(start[1]), headers, body))
            elif sent is not None:  # POST /runs/RUN/events/NAME?token=...
                reply = self.server.events.handle(_events.EventRequest(
                    self.command, unquote(sent[1]), unquote(sent[2]),
                    parse_qs(split.query, keep_blank_values=True), headers, body))
            else:
                assert match is not None
                reply = self.server.callbacks.handle(Request(
                    method=self.command, run_id=unquote(match[1]), step=unquote(match[2]),
                    verb=match[3], query=parse_qs(split.query, keep_blank_values=True),
                    headers=headers, body=body,
                ))
        except Exception:  # a bug: answer 500 and keep serving; the run is as it was or recorded
            logger.exception("internal error answering %s", printable(redact(self.path)))
            reply = json_reply(500, {"error": "internal error; see the server's log"})
        self._send(reply)

    def _read_body(self, headers: dict[str, str]) -> bytes | None:
        """The body, or None after answering 400/411/413 (checked before reading it)."""
        if "transfer-encoding" in headers:
            self._send(json_reply(411, {"error": "send the body with a Content-Length; chunked "
                                                 "bodies are not accepted"}))
            return None
        raw = headers.get("content-length", "0").strip()
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):
            self._send(json_reply(400, {"error": "the Content-Length header must be the body's "
                                        "size in bytes, written with the digits 0-9"}))
            return None
        try:
            limit = max_payload()
        except UsageError as exc:  # checked at start; changed in this process since
            logger.error("%s", exc.message)
            self._send(json_reply(500, {"error": "the server's payload limit is misconfigured; "
                                        "see its log"}))
            return None
        length = int(raw)
        if length > limit:
            self._send(json_reply(413, {"error": f"the body is over the {limit} byte limit"}))
            self._linger(length)
            return None
        body = self._read_exactly(length)
        if body is None:  # the client went away, or trickled the body for too long
            self.close_connection = True
        return body

    def _read_exactly(self, length: int) -> bytes | None:
        """Read the body before its deadline (the watchdog cuts a client that is too slow)."""
        parts: list[bytes] = []
        remaining = length
        while remaining > 0:
            chunk = self.rfile.read1(min(remaining, 65536))
            if not chunk or self.expired:
                return None
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _linger(self, length: int) -> None:
        """Read (and drop) a bounded part of a refused body, so the client reads the 413
        instead of a connection reset."""
        try:
            self.wfile.flush()
            self.connection.settimeout(1.0)
            remaining = min(length, LINGER_BYTES)
            while remaining > 0:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
        except OSError:
            pass
        self.close_connection = True

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in {**SECURITY_HEADERS, **reply.headers}.items():
            self.send_header(name, value)
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)
        self.close_connection = True

    def __getattr__(self, name: str) -> Callable[[], None]:
        """`do_METHOD` for every method: a link acts on any method but GET and HEAD (SPEC §7:
        Pipedream's "any HTTP request"), so none gets the standard library's 501."""
        if name.startswith("do_") and METHOD.fullmatch(name[3:]):
            return self._dispatch
        raise AttributeError(name)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One access-log line on stderr, with the token hidden."""
        self.log_message('"%s" %s', redact(self.requestline), str(code))

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr with tokens hidden and control characters escaped (`\\xNN`)."""
        line = printable(redact(format % args))
        sys.stderr.write(f"{self.address_string()} [{self.log_date_time_string()}] {line}\n")


class WfrunServer(ThreadingHTTPServer):
    """Answers resume and cancel URLs and starts over HTTP; accepted resumes and started runs
    continue in background workers."""

    daemon_threads = True
    allow_reuse_address = True
    # the kernel's backlog of connections not yet accepted (socketserver's default is 5: a
    # burst of a few dozen clients saw resets instead of an answer, even a 503)
    request_queue_size = 1024

    def __init__(self, host: str, port: int, engine: Callable[[], Engine], workers: int = 4,
                 max_connections: int = MAX_CONNECTIONS, max_per_client: int = MAX_PER_CLIENT,
                 header_timeout: float = HEADER_DEADLINE,
                 body_timeout: float = BODY_DEADLINE) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        self.max_connections = max_connections
        self._per_client: dict[str, int] = {}
        self._clients_lock = threading.Lock()
        self.max_per_client = max_per_client
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.deadlines = Deadlines()
        self.engine_factory = engine
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wfrun-worker",
                                           initializer=own_thread)
        self.callbacks = Callbacks(engine, self.continue_later)
        self.starts = _starts.Starts(engine, self.continue_later)  # POST /workflows/W/runs
        self.events = _events.EventSends(engine, self.continue_later)  # POST /runs/R/events/E
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (it can take seconds)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def _take_slot(self, client: str) -> bytes | None:
        """Count a new connection from `client`: None, or the 503 to send when it, or the
        server, has no slot left."""
        with self._clients_lock:
            if self._per_client.get(client, 0) >= self.max_per_client:
                return busy_reply(True, self.max_per_client)
            if not self._slots.acquire(blocking=False):
                return busy_reply(False, self.max_connections)
            self._per_client[client] = self._per_client.get(client, 0) + 1
            return None

    def _give_slot(self, client: str) -> None:
        with self._clients_lock:
            self._slots.release()
            left = self._per_client.get(client, 1) - 1
            if left > 0:
                self._per_client[client] = left
            else:
                self._per_client.pop(client, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in its own thread, or answer 503 when the server's slots, or
        those of the client's address, are all taken."""
        client = str(client_address[0]) if client_address else ""
        refused = self._take_slot(client)
        if refused is not None:
            with contextlib.suppress(OSError):
                request.sendall(refused)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._give_slot(client)
            raise

    def serve_forever(self, poll_interval: float = 0.5) -> None:
        """Serve until `shutdown`; the serving thread is one of wfrun's own (see `_threads`)."""
        own_thread()
        super().serve_forever(poll_interval)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection, then give its slot back. What the connection's thread writes
        (the access log) is the server's, never the output of a step executing meanwhile."""
        own_thread()
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._give_slot(str(client_address[0]) if client_address else "")

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection's handler raised: a client that went away mid-request (reset, broken
        pipe, timeout) is one line of the log; anything else is a bug, logged with its traceback
        (socketserver would print it bare to stderr). The server goes on either way."""
        client = str(client_address[0]) if client_address else "?"
        error = sys.exc_info()[1]
        if isinstance(error, ConnectionError | TimeoutError):
            logger.info("connection from %s ended early: %s", client,
                        error.strerror or type(error).__name__)
        else:
            logger.exception("error while serving a connection from %s", client)

    def continue_later(self, run_id: str) -> None:
        """Continue an accepted run in a background worker; once the server is shutting down
        the run is left to the next tick (it is durably marked running, hence due)."""
        try:
            self.executor.submit(self._continue, run_id)
        except RuntimeError:  # the pool is shut down: a request finished during SIGTERM
            logger.info("server stopping: run %s continues at the next 'wfrun tick'", run_id)

    def _continue(self, run_id: str) -> None:
        try:
            result = self.engine_factory().continue_run(run_id)
        except WfrunError as exc:  # (the state could not be read or written): one sentence
            logger.error("could not continue run %s (%s); the next 'wfrun tick' will", run_id,
                         exc.message.rstrip("."))
        except Exception:  # a bug: the run stays due; the next tick continues it
            logger.exception("could not continue run %s; the next 'wfrun tick' will", run_id)
        else:  # what a command would print on stderr (a retry wait, lost output, changed code)
            for warning in result.warnings:
                named = warning.startswith(f"run {run_id}")
                logger.warning("%s", warning if named else f"run {run_id}: {warning}")

    def close(self) -> None:
        """Stop listening and wait for the workers' running steps (queued ones are left to
        tick: their runs are durably marked running, hence due)."""
        self.server_close()
        self.deadlines.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)
