"""What `POST /workflows/W/runs` does: bearer token, body to input, run stored, 202, run later.

Statuses: 202 `{"run_id", "status"}` once the run is stored (its steps then execute in a
background worker, or at the next tick if the server stops first); 400 a body that is not JSON
or a bad Idempotency-Key; 401 no `Authorization: Bearer TOKEN` header, or a malformed one;
404 anything else that is not a valid token of workflow W (an unknown, revoked or other
workflow's token, or an unknown workflow: the same body, after the same work, so neither the
answer nor its time tells them apart); 405 another method; 409 an Idempotency-Key already used
with another input; 413 (the server) a body over the payload limit; 422 input failing the
workflow's `input_schema` (nothing is stored); 500 the workflow or the state cannot be read.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wfrun import tokens
from wfrun._detach import same_json
from wfrun._jsoninput import parse_json
from wfrun.engine import Engine
from wfrun.errors import ConflictError, NotFoundError, SchemaViolation, StateError, UsageError
from wfrun.model import RUNNING

from ._callback import NOT_FOUND, Reply, json_reply, state_failure

ROUTE = re.compile(r"/workflows/([^/]+)/runs")
ALLOWED = "POST, OPTIONS"
BEARER = re.compile(r"[Bb][Ee][Aa][Rr][Ee][Rr] +(\S+) *")
IDEMPOTENCY_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII, as Stripe's keys
logger = logging.getLogger("wfrun.http")

UNAUTHORIZED = Reply(
    401, json_reply(401, {"error": "send the token made by 'wfrun token create' in the header "
                                   "'Authorization: Bearer TOKEN'"}).body,
    headers={"WWW-Authenticate": 'Bearer realm="wfrun"'})


@dataclass
class StartRequest:
    """An HTTP request to `/workflows/W/runs`, as the server read it."""

    method: str
    workflow: str
    headers: dict[str, str]
    body: bytes = b""


def bearer_token(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer TOKEN` header; None if missing or malformed."""
    if header is None:
        return None
    match = BEARER.fullmatch(header)
    if match is None or not tokens.WIRE_PATTERN.fullmatch(match[1]):
        return None
    return match[1]


def idempotent_run_id(workflow: str, key: str) -> str:
    """The run id an Idempotency-Key stands for: derived from the workflow and the key, so a
    retried start (from any server process, at any time while the run is kept) finds its run."""
    digest = hashlib.sha256(f"{workflow}\0{key}".encode()).hexdigest()
    return f"http-{digest[:40]}"


class Starts:
    """Answers start requests; `continue_later(run_id)` executes a stored run in the background."""

    def __init__(self, engine: Callable[[], Engine], continue_later: Callable[[str], None]) -> None:
        self.engine = engine
        self.continue_later = continue_later

    def handle(self, req: StartRequest) -> Reply:
        """Answer one request to `/workflows/W/runs`."""
        if req.method == "OPTIONS":
            return Reply(204, b"", "text/plain", {"Allow": ALLOWED})
        if req.method != "POST":
            return Reply(405, json_reply(405, {"error": (
                "start a run with a POST of its input as a JSON body; nothing else is answered "
                "here")}).body, headers={"Allow": ALLOWED})
        token = bearer_token(req.headers.get("authorization"))
        if token is None:
            return UNAUTHORIZED
        engine = self.engine()
        try:
            if not tokens.authorizes(engine.store, token, req.workflow):
                return NOT_FOUND
        except StateError as exc:
            return state_failure(exc, "the server cannot read its tokens; see its log")
        return self._start(engine, req)

    def _start(self, engine: Engine, req: StartRequest) -> Reply:
        """Check and store the run for a request with a valid token of its workflow."""
        key = req.headers.get("idempotency-key")
        run_id = None
        if key is not None:
            if not IDEMPOTENCY_KEY.fullmatch(key):
                return json_reply(400, {"error": "the Idempotency-Key header must be 1 to 255 "
                                                 "visible ASCII characters (a UUID is a good one)"})
            run_id = idempotent_run_id(req.workflow, key)
        kind = req.headers.get("content-type", "").split(";")[0].strip().lower()
        if req.body and kind and kind != "application/json" and not kind.endswith("+json"):
            return json_reply(415, {"error": f"a {kind} body cannot be taken; send the run's "
                                             "input as JSON (Content-Type: application/json)"})
        try:
            data: Any = parse_json(req.body, "the request body") if req.body else {}
        except UsageError as exc:
            return json_reply(400, {"error": exc.message})
        try:
            result = engine.create(req.workflow, data, run_id)
        except SchemaViolation as exc:
            return json_reply(422, {"error": exc.message, "errors": exc.errors})
        except ConflictError as exc:
            if run_id is None:
                return json_reply(409, {"error": exc.message})
            return self._key_conflict(engine, req, run_id, data)
        except NotFoundError as exc:  # the token is valid, its workflow's files are gone
            logger.error("%s", exc.message)
            return json_reply(404, {"error": f"workflow '{req.workflow}' is not on this server "
                                             "any more; ask its operator"})
        except StateError as exc:  # a full disk, a database out of reach
            return state_failure(exc, f"run of workflow '{req.workflow}' not started: the "
                                      "server cannot store it; see its log")
        except UsageError as exc:  # a manifest that does not load
            logger.error("%s", exc.message)
            return json_reply(500, {"error": f"run of workflow '{req.workflow}' not started: "
                                             "the server cannot load it; see its log"})
        if result.run.status == RUNNING:
            self.continue_later(result.run.run_id)
        return json_reply(202, {"run_id": result.run.run_id, "status": result.run.status})

    def _key_conflict(self, engine: Engine, req: StartRequest, run_id: str, data: Any) -> Reply:
        """The run of an Idempotency-Key could not be had: its key started another input, or
        a concurrent request with the same key is storing it right now."""
        key = req.headers.get("idempotency-key")
        try:
            run = engine.store.load(run_id)
        except NotFoundError:
            return Reply(409, json_reply(409, {"error": (
                f"a request with the Idempotency-Key {key!r} is starting run {run_id} right "
                "now; send this one again in a moment")}).body, headers={"Retry-After": "1"})
        except StateError as exc:
            return state_failure(exc, f"run {run_id} cannot be read; see the server's log")
        if same_json(run.input, data):  # the same start, stored by that concurrent request
            return json_reply(202, {"run_id": run.run_id, "status": run.status})
        return json_reply(409, {"error": (
            f"the Idempotency-Key {key!r} already started run {run_id} with another input; send "
            "a new key to start another run")})
