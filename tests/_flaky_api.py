"""A local HTTP API on 127.0.0.1 that fails its first N requests with 503 (for retry examples)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FlakyAPI:
    """Counts requests; answers 503 to the first `failures`, then 200 with a JSON body."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.requests = 0
        self.url = ""


@contextmanager
def flaky_api(failures: int) -> Iterator[FlakyAPI]:
    """Serve a FlakyAPI on an ephemeral port of 127.0.0.1 for the duration of the block."""
    api = FlakyAPI(failures)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            api.requests += 1
            if api.requests <= api.failures:
                self.send_error(503, "Service Unavailable")
                return
            body = json.dumps({"answer": 42, "request": api.requests}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/v1/completions"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
