"""The HTTP server of `wfrun serve`: the standard library's ThreadingHTTPServer, hardened.

One thread per connection (a slow client holds only its own thread; at most MAX_CONNECTIONS at
once), a socket timeout on every read and a deadline for the whole body, the body cap enforced
from Content-Length before any body byte is read, chunked bodies refused, and accepted resumes
continued by a small pool of background workers.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import socketserver
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from wfrun._jsoninput import max_payload
from wfrun.engine import Engine, _accept

from ._callback import NOT_FOUND, Callbacks, Reply, Request, json_reply

ROUTE = re.compile(r"/runs/([^/]+)/steps/([^/]+)/(resume|cancel)")
REQUEST_TIMEOUT = 30.0  # seconds a client may stay silent while sending its request
BODY_DEADLINE = 60.0  # seconds a client may take to send a whole body
MAX_CONNECTIONS = 128  # connections served at once; more get 503 at once
LINGER_BYTES = 4 * 1024 * 1024  # after a 413, read at most this much so the client sees it
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}
logger = logging.getLogger("wfrun.http")


def redact(text: str) -> str:
    """Hide tokens in text that is logged."""
    return re.sub(r"token=[^&\s\"]*", "token=...", text)


class Handler(BaseHTTPRequestHandler):
    """Routes every method to the link handler; anything else is 404."""

    server: WfrunServer
    timeout = REQUEST_TIMEOUT

    def version_string(self) -> str:
        """The Server header: no Python version."""
        return "wfrun"

    def _dispatch(self) -> None:
        split = urlsplit(self.path)
        if split.path == "/healthz":
            self._send(json_reply(200, {"ok": True}))
            return
        match = ROUTE.fullmatch(split.path)
        if match is None:
            self._send(NOT_FOUND)
            return
        headers: dict[str, str] = {}
        for name, value in self.headers.items():
            key = name.lower()
            headers[key] = f"{headers[key]}, {value}" if key in headers else value
        body = self._read_body(headers)
        if body is None:
            return
        request = Request(
            method=self.command, run_id=unquote(match[1]), step=unquote(match[2]),
            verb=match[3], query=parse_qs(split.query, keep_blank_values=True),
            headers=headers, body=body,
        )
        try:
            reply = self.server.callbacks.handle(request)
        except Exception:  # a bug: answer 500 and keep serving; the run is as it was or recorded
            logger.exception("internal error answering %s", redact(self.path))
            reply = json_reply(500, {"error": "internal error; see the server's log"})
        self._send(reply)

    def _read_body(self, headers: dict[str, str]) -> bytes | None:
        """The body, or None after answering 400/411/413 (checked before reading it)."""
        if "transfer-encoding" in headers:
            self._send(json_reply(411, {"error": "send the body with a Content-Length; chunked "
                                                 "bodies are not accepted"}))
            return None
        raw = headers.get("content-length", "0").strip()
        if not raw.isdigit():
            self._send(json_reply(400, {"error": "invalid Content-Length"}))
            return None
        length, limit = int(raw), max_payload()
        if length > limit:
            self._send(json_reply(413, {"error": f"the body is over the {limit} byte limit"}))
            self._linger(length)
            return None
        body = self._read_exactly(length)
        if body is None:  # the client went away, or trickled the body for too long
            self.close_connection = True
        return body

    def _read_exactly(self, length: int) -> bytes | None:
        """Read the body within BODY_DEADLINE seconds in all (each read also has `timeout`)."""
        deadline = time.monotonic() + BODY_DEADLINE
        parts: list[bytes] = []
        remaining = length
        while remaining > 0:
            if time.monotonic() > deadline:
                return None
            chunk = self.rfile.read1(min(remaining, 65536))
            if not chunk:
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

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """One access-log line on stderr, with the token hidden."""
        self.log_message('"%s" %s', redact(self.requestline), str(code))

    def log_message(self, format: str, *args: Any) -> None:
        """Log to stderr with tokens hidden."""
        line = redact(format % args)
        sys.stderr.write(f"{self.address_string()} [{self.log_date_time_string()}] {line}\n")


class WfrunServer(ThreadingHTTPServer):
    """Answers resume and cancel URLs; accepted resumes continue in background workers."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, host: str, port: int, engine: Callable[[], Engine], workers: int = 4,
                 max_connections: int = MAX_CONNECTIONS) -> None:
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._slots = threading.BoundedSemaphore(max_connections)
        self.engine_factory = engine
        self.executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="wfrun-worker")
        self.callbacks = Callbacks(engine, self.continue_later)
        super().__init__((host, port), Handler)

    def server_bind(self) -> None:
        """Bind without HTTPServer's reverse DNS lookup of the host (it can take seconds)."""
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])

    def process_request(self, request: Any, client_address: Any) -> None:
        """Serve the connection in its own thread, or answer 503 when all slots are taken."""
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(b"HTTP/1.0 503 Service Unavailable\r\nContent-Length: 0\r\n"
                                b"Retry-After: 5\r\nConnection: close\r\n\r\n")
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        """Handle one connection, then give its slot back."""
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def continue_later(self, run_id: str) -> None:
        """Continue an accepted run in a background worker."""
        self.executor.submit(self._continue, run_id)

    def _continue(self, run_id: str) -> None:
        try:
            _accept.continue_run(self.engine_factory(), run_id)
        except Exception:  # the run stays due; the next tick continues it
            logger.exception("could not continue run %s; the next 'wfrun tick' will", run_id)

    def close(self) -> None:
        """Stop listening and wait for the workers' running steps (queued ones are left to
        tick: their runs are durably marked running, hence due)."""
        self.server_close()
        self.executor.shutdown(wait=True, cancel_futures=True)
