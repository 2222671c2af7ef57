"""Resume and cancel links: URLs carrying HMAC tokens scoped to run, step, verb and pause; which
pause a presented token opens (active, early or ended), from the recent nonces kept per step."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import shlex
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from wfrun._specs import Workflow
from wfrun.flow import Links
from wfrun.model import SUSPENDED, WAITING, Run

from ._composite import node_of
from ._inbox import executing_nonce

VERBS = ("resume", "cancel")
EVENT = "event"  # the verb of an event URL's token: scoped to run and event name, no pause


def remember_nonces(run: Run) -> None:
    """Keep each step's (and foreach iteration's) current pause nonce in its recent list
    (called before each save)."""
    for step in run.steps.values():
        if step.pause is not None:
            step.keep_nonce(step.pause.get("nonce"))
        for state in step.iterations or ():
            if state.pause is not None:
                state.keep_nonce(state.pause.get("nonce"))


APPROVER_MARK = "~"  # `NAME~HMAC`: the token of one approver (`approvals:`), scoped to them


def make_token(key: bytes, verb: str, run_id: str, step: str, nonce: str,
               approver: str | None = None) -> str:
    """An unguessable token (192 bits) for one verb on one pause of one step of one run; with
    `approver`, for that approver only (`NAME~HMAC`, the name inside the HMAC message)."""
    parts = (verb, run_id, step, nonce) + ((approver,) if approver is not None else ())
    digest = hmac.new(key, "\0".join(parts).encode(), hashlib.sha256).digest()[:24]
    token = base64.urlsafe_b64encode(digest).decode().rstrip("=")
    return token if approver is None else f"{approver}{APPROVER_MARK}{token}"


def token_approver(token: str) -> str | None:
    """The approver a token claims to be for (`NAME~HMAC`), or None for a plain token."""
    name, mark, _ = token.partition(APPROVER_MARK)
    return name if mark else None


def token_matches(key: bytes, token: str, verb: str, run_id: str, step: str, nonce: str) -> bool:
    """Compare a presented token with the expected one in constant time (an approver's token
    with the one made for the approver it names)."""
    expected = make_token(key, verb, run_id, step, nonce, token_approver(token))
    return hmac.compare_digest(expected.encode(), token.encode())


ACTIVE = "active"
EARLY = "early"  # the links of a step still executing: a resume is kept until it pauses
ENDED = "ended"


def token_state(key: bytes, run: Run, step: str, verb: str, token: str) -> str | None:
    """ACTIVE if `token` opens the step's current pause for `verb`, EARLY if it is a link the
    step's current execution holds (it has not paused yet), ENDED if it opened an earlier
    pause of that step, None if it is not a token of this run, step and verb."""
    state = node_of(run, step)  # a step, or a foreach iteration (`step[2]`)
    if state is None or verb not in VERBS or not token:
        return None
    current = (state.pause or {}).get("nonce")
    gate = (state.pause or {}).get("approvals")  # an approvals step opens to its approvers only
    approver = token_approver(token)
    opens = approver in gate.get("approvers", ()) if gate is not None else approver is None
    if current and opens and state.status in (SUSPENDED, WAITING) and token_matches(
            key, token, verb, run.run_id, step, current):
        return ACTIVE
    executing = executing_nonce(state)
    if executing and token_matches(key, token, verb, run.run_id, step, executing):
        return EARLY
    for nonce in state.nonces:
        if nonce != current and token_matches(key, token, verb, run.run_id, step, nonce):
            return ENDED
    return None


def ended_message(run: Run, step: str) -> str:
    """Why a link of an ended pause no longer works (told only to holders of a real token)."""
    state = node_of(run, step) or run.steps[step]
    if state.resumed_at:
        return (f"step '{step}' of run {run.run_id} was already resumed at {state.resumed_at}; "
                "its data is kept and this link no longer works")
    if run.finished:
        return f"run {run.run_id} is {run.status}; this link no longer works"
    return (f"the pause of step '{step}' of run {run.run_id} has ended (the step is "
            f"{state.status}); this link no longer works")


class LinkMaker:
    """Builds the links of a paused step from the store's secret and the run's settings."""

    def __init__(self, key: bytes | Callable[[], bytes], base_url: str, command: str,
                 stored: Callable[[], bytes | None] | None = None) -> None:
        self._secret = key  # or how to read it: only when a link is made or checked
        self._stored = stored  # the key if the store has one, without making one
        self._base = base_url.rstrip("/")
        self._command = command

    @property
    def _key(self) -> bytes:
        """The store's URL key, read on first use (a run shown without links reads none)."""
        if not isinstance(self._secret, bytes):
            self._secret = self._secret()
        return self._secret

    def ready(self) -> None:
        """StateError if the store's URL key is damaged (a store with none yet is fine: it is
        made when a link is). Checked before step code executes, which would otherwise fail on
        it, as if the step raised, when it asks for its links; once per maker."""
        if self._stored is not None and not isinstance(self._secret, bytes):
            key, self._stored = self._stored(), None
            if key is not None:
                self._secret = key

    def links(self, run_id: str, step: str, nonce: str, workflow: Workflow | None = None,
              schema: Any = None, schema_step: str | None = None,
              approver: str | None = None) -> Links:
        """The four links of one pause (`nonce` identifies the pause).

        The resume command suggests data matching the step's `resume_schema` and, when later
        steps branch on this step's action, the first such action; with `schema` (an ask's),
        data matching both it and `resume_schema`, as the answer must. When `step` is an address
        (`review[1]`, `review[1]/approve`), `schema_step` is the manifest step (of `workflow`)
        whose schema and actions to use. With `approver`, the links and command are that
        approver's (`approvals:`)."""
        spec = workflow.steps.get(schema_step or step) if workflow else None
        resume_schema = spec.resume_schema if spec else None
        if schema is not None:  # an ask's answer must match both (wfrun.engine._ask)
            resume_schema = schema if resume_schema is None else {"allOf": [resume_schema, schema]}
        actions = workflow.actions_for(schema_step or step) if workflow else []
        path = f"{self._base}/runs/{run_id}/steps/{quote(step, safe='')}"
        resume_token = make_token(self._key, "resume", run_id, step, nonce, approver)
        cancel_token = make_token(self._key, "cancel", run_id, step, nonce, approver)
        data = _example(resume_schema)
        return Links(
            resume_url=f"{path}/resume?token={resume_token}",
            cancel_url=f"{path}/cancel?token={cancel_token}",
            resume_command=(
                f"{self._command} resume {run_id} --step {shlex.quote(step)} "
                + (f"--as {shlex.quote(approver)} " if approver is not None else "")
                + (f"--action {shlex.quote(actions[0])} " if actions else "")
                + f"--data {shlex.quote(data)}"
            ),
            cancel_command=f"{self._command} cancel {run_id}",
        )

    def event_url(self, run_id: str, name: str) -> str:
        """The URL that sends event `name` to the run (`ctx.flow.event_url`): its token is
        scoped to the run and the event name, and works for the life of the run."""
        token = make_token(self._key, EVENT, run_id, name, "")
        return f"{self._base}/runs/{run_id}/events/{quote(name, safe='')}?token={token}"

    def event_token_matches(self, run_id: str, name: str, token: str) -> bool:
        """True if `token` is the one of the run's event URL for `name` (constant time)."""
        return bool(token) and token_matches(self._key, token, EVENT, run_id, name, "")

    def send_command(self, run_id: str, name: str, schema: Any = None) -> str:
        """The command that sends event `name` to the run, with data matching `schema`."""
        data = _example(schema)
        return f"{self._command} send {run_id} {shlex.quote(name)} --data {shlex.quote(data)}"


def _example(schema: Any) -> str:
    """Data for a suggested command, as JSON text: `{}` without a schema, else data it takes."""
    if not schema:
        return "{}"
    # imported on use: a command whose runs hand out no new links (a resume that completes
    # its run, the usual one) does not pay for building examples (docs/architecture.md)
    from wfrun._examples import example_data

    return json.dumps(example_data(schema))
