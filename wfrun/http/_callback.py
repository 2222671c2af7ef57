"""What a request to a resume or cancel URL does: token check, body to data, engine call, reply.

Statuses: 202 resume recorded (the run continues in the background), 200 cancelled, a page or
a description of the link, 400 unreadable body (or a `token`, `action` or `reason` query
parameter given more than once: nothing changed), 404 no such link (no detail: bad, unknown and
foreign tokens look the same, and so does a run whose snapshot cannot be read: its token
cannot be checked), 409 link already used or its pause ended (or its step no longer
exists in the workflow: GET says so too), 422 data failing `resume_schema`, 500 state error.
GET and HEAD never change anything (link previews and mail scanners fetch every URL they
see); every other method acts, OPTIONS and unknown ones included. A page (approval, cancel
confirmation, error) goes to a client whose Accept header prefers text/html (`wants_html`),
JSON to any other.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs

from wfrun._jsoninput import parse_json
from wfrun._textdata import fields_data, query_data
from wfrun.engine import Decoy, Engine, OpenLink, Result
from wfrun.errors import (
    CodeChangedError,
    ConflictError,
    ManifestError,
    NotFoundError,
    SchemaViolation,
    StateError,
    StoreMissing,
    StoreUnavailable,
    UsageError,
    WfrunError,
)
from wfrun.model import COMPLETED

from ._accept import wants_html
from ._forms import form_data, page_values
from ._pages import (
    ACTION_FIELD,
    FORM_MARKER,
    approval_page,
    cancel_page,
    message_page,
)

MAX_ACTION = 200
SAFE = ("GET", "HEAD")  # they describe a link, never use it
logger = logging.getLogger("wfrun.http")
RETRY_AFTER_SECONDS = 1  # when the store cannot be reached: a restart or a cut connection
GONE_TITLE = "Step no longer exists"  # a page's title when the workflow lost the link's step


@dataclass
class Request:
    """An HTTP request to a link, as the server read it."""

    method: str
    run_id: str
    step: str
    verb: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""


@dataclass
class Reply:
    """What to answer: status, body and content type, and extra headers."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def json_reply(status: int, value: Any) -> Reply:
    """A JSON reply."""
    return Reply(status, (json.dumps(value, ensure_ascii=False) + "\n").encode())


def state_failure(exc: StateError | ManifestError, message: str, html: bool = False,
                  title: str = "Server error") -> Reply:
    """The answer when the runs' state cannot be read or written, or a run's workflow cannot
    be loaded (a broken deploy: worth sending again once fixed), its details left to the
    server's log: 503 with Retry-After while the store cannot be reached (its database is
    restarting, a connection was cut: the same request may succeed in a moment), else 500
    with `message`."""
    logger.error("%s", exc.message)
    if isinstance(exc, StoreUnavailable):
        reply = _error(503, "the runs' store cannot be reached for the moment; send this again "
                       "shortly", html, "Try again shortly")
        reply.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
        return reply
    return _error(500, message, html, title)


def html_reply(status: int, page: tuple[str, str]) -> Reply:
    """An HTML reply with its Content-Security-Policy."""
    html, policy = page
    return Reply(status, html.encode(), "text/html; charset=utf-8",
                 {"Content-Security-Policy": policy})


NOT_FOUND = json_reply(404, {"error": "not found"})


def _error(status: int, message: str, html: bool, title: str, **extra: Any) -> Reply:
    if html:
        return html_reply(status, message_page(title, message))
    return json_reply(status, {"error": message, **extra})


def decode_body(body: bytes, content_type: str) -> tuple[Any, dict[str, list[str]] | None]:
    """(data, form fields if it was a form): JSON as JSON, a form as an object, text as text.

    Raises UsageError for a body that is not what its Content-Type says."""
    kind = content_type.split(";")[0].strip().lower()
    if not body:
        return None, None
    if kind == "application/x-www-form-urlencoded":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError("the form body is not valid UTF-8") from None
        fields = parse_qs(text, keep_blank_values=True)
        return {k: v[0] if len(v) == 1 else v for k, v in fields.items()}, fields
    if kind == "application/json" or kind.endswith("+json") or not kind:
        return parse_json(body, "the request body"), None
    if kind.startswith("text/"):
        try:
            return body.decode("utf-8"), None
        except UnicodeDecodeError:
            raise UsageError("the request body is not valid UTF-8 text") from None
    raise UsageError(f"a {kind} body cannot be taken; send JSON, a form or text")


# the query parameters a link takes one value of, by verb
ONCE = {"resume": ("token", "action"), "cancel": ("token", "reason")}


def given_twice(query: dict[str, list[str]], names: tuple[str, ...],
                html: bool = False) -> Reply | None:
    """400 when one of `names` is given more than once in the query (`&action=a&action=b`):
    which one was meant cannot be known, so the request changes nothing; checked before the
    token is, so it tells nothing about tokens either."""
    twice = next((name for name in names if len(query.get(name, ())) > 1), None)
    if twice is None:
        return None
    return _error(400, f"the {twice} parameter was given more than once in the URL; nothing "
                  f"was changed: give {twice}= once", html, "Bad request")


def callback_request(req: Request, body: Any) -> dict[str, Any]:
    """`ctx.run.callback_request` for this request (the token is left out of the query)."""
    query = {k: v[0] if len(v) == 1 else v for k, v in req.query.items() if k != "token"}
    return {"method": req.method, "headers": dict(req.headers), "query": query, "body": body,
            "source": "http"}


@dataclass
class Link:
    """What a link's step asks for: its schema (an ask's too), known actions and workflow."""

    schema: Any
    actions: list[str]
    description: str
    now: datetime | None = None  # the server's clock when the link was opened (page times)
    gone: str | None = None  # why a resume is refused: the step no longer exists (as POST says)


class Callbacks:
    """Answers link requests; `continue_later(run_id)` runs the rest of a run in the background."""

    def __init__(self, engine: Callable[[], Engine], continue_later: Callable[[str], None]) -> None:
        self.engine = engine
        self.continue_later = continue_later
        self._decoy = Decoy()  # a stored run, read in place of an unknown one (no timing oracle)

    def handle(self, req: Request) -> Reply:
        """Answer one request to `/runs/RUN/steps/STEP/(resume|cancel)?token=...`."""
        engine = self.engine()
        html = wants_html(req.headers)
        refused = given_twice(req.query, ONCE.get(req.verb, ("token",)), html)
        if refused is not None:
            return refused
        token = (req.query.get("token") or [""])[0]
        try:
            opened = engine.open_link(req.run_id, req.step, req.verb, token, self._decoy)
        except NotFoundError:
            return NOT_FOUND
        except StateError as exc:
            return self._unreadable(engine, req, token, exc, html)
        if opened.ended:
            return _error(409, opened.ended_message(), html, "Link already used")
        try:
            if req.method in SAFE:
                return self._describe(engine, req, opened, token, html)
            if req.verb == "cancel":
                return self._cancel(engine, req, token, html)
            return self._resume(engine, req, opened, token, html)
        except StateError as exc:
            return state_failure(exc, "the runs' state cannot be read or written; see the "
                                 "server's log", html)
        except ManifestError as exc:  # its module fails to import, a handler is missing
            return state_failure(exc, "the run's workflow cannot be loaded; see the server's "
                                 "log", html)
        except WfrunError as exc:  # the run is busy, ...
            return _error(409, exc.message, html, "Cannot continue")

    def _unreadable(self, engine: Engine, req: Request, token: str, exc: StateError,
                    html: bool) -> Reply:
        """The answer when the link's token could not be checked because its run cannot be
        read (a damaged snapshot): the 404 of a wrong token, as for a run that does not exist
        (the answer must not tell which runs exist), with the state error in the server's log
        for its operator. A store that cannot be read as a whole (out of reach: 503; its
        place or its URL key unreadable: 500) is answered as such: a token checked against
        the decoy, as for an unknown run (which also costs what that does), tells them apart."""
        if isinstance(exc, StoreUnavailable | StoreMissing):
            return state_failure(exc, "the runs' state cannot be read; see the server's log",
                                 html)
        try:
            engine.open_link("", req.step, req.verb, token, self._decoy)  # never a run id
        except StateError as whole:
            return state_failure(whole, "the runs' state cannot be read; see the server's log",
                                 html)
        except NotFoundError:
            pass
        logger.error("a link of run %s was answered 404, its token unchecked: %s", req.run_id,
                     " ".join(exc.message.splitlines()))
        return NOT_FOUND

    def _link(self, engine: Engine, opened: OpenLink) -> Link:
        """The step's schema, known actions and workflow description (loads the workflow)."""
        schema, actions, description, gone = engine.link_expects(opened)
        return Link(schema, actions, description, engine.clock.now(), gone)

    def _describe(self, engine: Engine, req: Request, opened: OpenLink, token: str,
                  html: bool) -> Reply:
        """A GET or HEAD: the approval or cancel page for a browser, else a JSON description."""
        run = opened.run
        if req.verb == "cancel":
            if html:
                return html_reply(200, cancel_page(opened, token, engine.clock.now()))
            return json_reply(200, {
                "run_id": run.run_id, "step": req.step, "verb": "cancel", "resume_schema": None,
                "actions": [], "how": f"POST this URL to cancel run {run.run_id} (optionally "
                "with a reason: &reason=TEXT, or a JSON body {\"reason\": \"...\"}); a GET "
                "changes nothing"})
        link = self._link(engine, opened)
        if link.gone is not None:  # a POST is refused: 409, the same sentence (no form)
            return _error(409, link.gone, html, GONE_TITLE)
        if html:
            values = page_values(link.schema, req.query, link.actions)
            return html_reply(200, approval_page(
                opened, token, link.schema, link.actions, values, description=link.description,
                now=link.now))
        choose = (f", and add &action=NAME to choose one of {', '.join(link.actions)}"
                  if link.actions else "")
        state = opened.node
        label = (state.pause or {}).get("label")
        gate = (state.pause or {}).get("approvals")
        mine = next((d for d in (gate or {}).get("decisions", [])
                     if d.get("by") == opened.approver), None) if opened.approver else None
        how = (f"POST this URL to resume step '{req.step}' of run {run.run_id}: send the data "
               f"as a JSON body, or with no body as query parameters (&name=value){choose}; a "
               "GET changes nothing")
        if mine is not None:  # each approver decides once: a POST would get 409
            how = (f"{opened.approver} already decided ({mine.get('action')} at "
                   f"{mine.get('at')}); each approver decides once, so this URL takes nothing "
                   "more: a POST gets 409")
        return json_reply(200, {
            "run_id": run.run_id, "step": req.step, "verb": "resume",
            "resume_schema": link.schema, "actions": link.actions,
            "suspend_data": state.suspend_data,
            **({"label": label} if label else {}),
            **({"approver": opened.approver, "approvals": gate} if opened.approver else {}),
            "how": how})

    def _cancel(self, engine: Engine, req: Request, token: str, html: bool) -> Reply:
        try:
            data, _ = decode_body(req.body, req.headers.get("content-type", ""))
        except UsageError as exc:
            return _error(400, exc.message, html, "Bad request")
        reason: str | None = (req.query.get("reason") or [""])[0] or None
        if isinstance(data, dict) and isinstance(data.get("reason"), str):
            reason = data["reason"] or None
        reason = (reason or f"cancelled through the cancel URL of step '{req.step}'")[:500]
        try:
            result = engine.accept_cancel(req.run_id, req.step, token, reason)
        except ConflictError as exc:
            return _error(409, exc.message, html, "Link already used")
        if html:
            return html_reply(200, message_page(
                "Run cancelled", f"Run {req.run_id} is cancelled."))
        return json_reply(200, {"run_id": req.run_id, "step": req.step, "status": result.run.status})

    def _resume(self, engine: Engine, req: Request, opened: OpenLink, token: str,
                html: bool) -> Reply:
        try:
            data, form = decode_body(req.body, req.headers.get("content-type", ""))
        except UsageError as exc:
            return _error(400, exc.message, html, "Bad request")
        from_page = form is not None and FORM_MARKER in form
        action: str | None = (req.query.get("action") or [""])[0] or None
        link = Link(None, [], "")
        if form is not None or html or not req.body:  # forms, pages and the query need these
            link = self._link(engine, opened)
        if from_page and form is not None:
            action = (form.get(ACTION_FIELD) or [""])[0] or action
            data, errors = form_data(link.schema, form, action, link.actions)
            if errors:
                return self._invalid(opened, req, token, link, data, errors, html)
        elif form is not None:  # a service's form: its fields, typed as the schema asks
            data = fields_data(link.schema, form)
        elif not req.body:  # no body: the query parameters are the data
            data = query_data(link.schema, req.query)
        if action is not None and not (0 < len(action) <= MAX_ACTION):
            return _error(400, f"the action must be 1 to {MAX_ACTION} characters", html,
                          "Bad request")
        try:
            result = engine.accept_resume(req.run_id, req.step, token, data, action,
                                          callback_request(req, data))
        except SchemaViolation as exc:
            return self._invalid(opened, req, token, link, data, exc.errors, html, exc.message)
        except CodeChangedError as exc:  # the step no longer exists in the workflow
            return _error(409, exc.message, html, GONE_TITLE)
        except ConflictError as exc:
            return _error(409, exc.message, html, "Link already used")
        except ManifestError:
            raise  # the workflow cannot be loaded: 500 below
        except UsageError as exc:  # an unknown action, or none where one is needed
            return self._invalid(opened, req, token, link, data, [], html, exc.message)
        if result.accepted:  # the step is still executing: the resume applies when it pauses
            if html:
                return html_reply(202, message_page(
                    "Thank you", f"Your answer for step {req.step} of run {req.run_id} is "
                    "recorded; it applies as soon as the step pauses. You can close this page.",
                    data))
            return json_reply(202, {"run_id": req.run_id, "step": req.step, "status": "accepted",
                                    "accepted": True, "action": action})
        self.continue_later(req.run_id)
        if opened.approver is not None:  # one decision of several (N-of-M approvals)
            return self._decided(req, opened, result, action, data, html)
        if html:
            done = f" with action {action}" if action else ""
            return html_reply(202, message_page(
                "Thank you", f"Step {req.step} of run {req.run_id} was resumed{done}. The run "
                "continues in the background; you can close this page.", data))
        return json_reply(202, {"run_id": req.run_id, "step": req.step, "accepted": True,
                                "action": action, "status": result.run.status})

    def _decided(self, req: Request, opened: OpenLink, result: Result, action: str | None,
                 data: Any, html: bool) -> Reply:
        """The reply to one approver's decision: recorded, and whether the step decided."""
        state = result.run.steps.get(opened.manifest_step)
        decision = (state.output or {}).get("decision") if state is not None \
            and state.status == COMPLETED and isinstance(state.output, dict) else None
        if html:
            then = (f" The step is decided: {decision}." if decision else
                    " The step waits for the other approvers.")
            return html_reply(202, message_page(
                "Thank you", f"Your decision ({action}) on step {req.step} of run {req.run_id} "
                f"is recorded as {opened.approver}.{then} You can close this page.", data))
        return json_reply(202, {"run_id": req.run_id, "step": req.step, "accepted": True,
                                "by": opened.approver, "action": action,
                                "decision": decision, "status": result.run.status})

    def _invalid(self, opened: OpenLink, req: Request, token: str, link: Link, data: Any,
                 errors: list[dict[str, str]], html: bool, message: str | None = None) -> Reply:
        message = message or "; ".join(e["message"] for e in errors)
        if html:
            return html_reply(422, approval_page(
                opened, token, link.schema, link.actions, data,
                errors or [{"path": "$", "message": message}], description=link.description,
                now=link.now))
        return json_reply(422, {"error": message, "errors": errors})
