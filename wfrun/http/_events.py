"""What a request to an event URL does (`/runs/RUN/events/NAME?token=...`, the URL of
`ctx.flow.event_url(name)`): token check, body to data, `Engine.send`, reply.

Statuses: 202 `{"status": "accepted", "run_id", "event", "step", "kept"}` once the event is
stored: taken by the step waiting for it (`step`; the run continues in a background worker,
or at the next tick if the server stops first) or kept in the run's inbox for the next step
that waits for it (`kept`); 200 for GET and HEAD, a JSON description of the URL (nothing is
sent; every other method sends); 400 a body that cannot be read, or `token` given more than
once (nothing sent); 404 anything that is not a valid event URL
of a stored run (bad, unknown or foreign token, unknown run: the same body, and the token is
checked before the store is read, so the time tells nothing either); 409 the run is finished
or cannot take the event now; 422 data failing the schema of the step
waiting for the event (nothing is stored); 500 the state cannot be read or written.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wfrun._textdata import fields_data, query_data
from wfrun.engine import Engine
from wfrun.errors import (
    ManifestError,
    NotFoundError,
    SchemaViolation,
    StateError,
    UsageError,
    WfrunError,
)
from wfrun.model import RUNNING

from ._callback import NOT_FOUND, Reply, decode_body, given_twice, json_reply, state_failure

ROUTE = re.compile(r"/runs/([^/]+)/events/([^/]+)")
SAFE = ("GET", "HEAD")  # they describe the URL, never send the event
logger = logging.getLogger("wfrun.http")


@dataclass
class EventRequest:
    """An HTTP request to an event URL, as the server read it."""

    method: str
    run_id: str
    name: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


class EventSends:
    """Answers event URLs; `continue_later(run_id)` runs the rest of a run in the background."""

    def __init__(self, engine: Callable[[], Engine], continue_later: Callable[[str], None]) -> None:
        self.engine = engine
        self.continue_later = continue_later

    def handle(self, req: EventRequest) -> Reply:
        """Answer one request to `/runs/RUN/events/NAME?token=...`."""
        engine = self.engine()
        refused = given_twice(req.query, ("token",))
        if refused is not None:
            return refused
        token = (req.query.get("token") or [""])[0]
        try:
            link = engine.open_event(req.run_id, req.name, token)
        except NotFoundError:
            return NOT_FOUND
        except StateError as exc:
            return state_failure(exc, "the state cannot be read; see the server's log")
        run = link.run
        if run.finished:
            return json_reply(409, {"error": f"run {run.run_id} is {run.status}; it takes no "
                                             "events and this URL no longer sends any"})
        if req.method in SAFE:
            waiting = link.waiting
            return json_reply(200, {
                "run_id": run.run_id, "event": req.name, "verb": "event",
                "run_status": run.status, "waiting": waiting, "schema": link.schema,
                "kept": link.kept,
                "how": f"POST this URL to send event '{req.name}' to run {run.run_id}: its data "
                       "as a JSON body, or with no body as query parameters (&name=value). "
                       + (f"Step '{waiting[0]}' waits for it and takes it; "
                          if waiting else "No step waits for it yet: it is kept until one does; ")
                       + "a GET changes nothing"})
        return self._send(engine, req, link.schema)

    def _send(self, engine: Engine, req: EventRequest, schema: Any) -> Reply:
        try:
            data, form = decode_body(req.body, req.headers.get("content-type", ""))
        except UsageError as exc:
            return json_reply(400, {"error": exc.message})
        fields = form  # text: typed as the schema of the step that takes the event asks
        if form is not None:
            data = fields_data(schema, form)
        elif not req.body:  # no body: the query parameters (but the token) are the data
            fields = {k: v for k, v in req.query.items() if k != "token"}
            data = query_data(schema, fields, reserved=())
        query = {k: v[0] if len(v) == 1 else v for k, v in req.query.items() if k != "token"}
        request = {"method": req.method, "headers": dict(req.headers), "query": query,
                   "source": "http"}
        try:
            result = engine.send(req.run_id, req.name, data, request, execute=False,
                                 fields=fields or None)
        except SchemaViolation as exc:
            return json_reply(422, {"error": exc.message, "errors": exc.errors})
        except NotFoundError:  # deleted since its token was checked
            return NOT_FOUND
        except StateError as exc:
            return state_failure(exc, "the state cannot be read or written; see the server's log")
        except ManifestError as exc:  # its module fails to import, a handler is missing
            return state_failure(exc, "the run's workflow cannot be loaded; see the server's "
                                 "log")
        except WfrunError as exc:  # finished meanwhile, busy, its step gone
            return json_reply(409, {"error": exc.message})
        if result.taker is not None:  # this run, or a child run below it, took the event:
            self.continue_later(result.taker.run_id)  # it goes on, or tells its parent it ended
        elif result.run.status == RUNNING:
            self.continue_later(req.run_id)
        return json_reply(202, {"status": "accepted", "run_id": req.run_id, "event": req.name,
                                "step": result.step, "kept": result.step is None})
