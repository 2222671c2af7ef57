"""`ctx.flow`: what a step asks of the engine (suspend, rerun, sleep, ask, wait for an event,
route, exit), and the resume and cancel links of its pause.

The flow API only records *requests*; the engine applies them when the step returns. This
module imports nothing of the engine.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from wfrun.durations import parse_duration, parse_iso
from wfrun.errors import FlowError
from wfrun.ids import random_token
from wfrun.manifest import LABEL_PATTERN

ON_TIMEOUT = ("cancel", "resume", "fail")
DEFAULT_MAX_RETRIES = 10


class Links(dict[str, str]):
    """How to continue a paused step: `resume_url`, `cancel_url`, `resume_command`,
    `cancel_command`; readable as attributes or as keys (`links["resume_url"]`)."""

    @property
    def resume_url(self) -> str:
        """URL that resumes the step (served by `wfrun serve`)."""
        return self["resume_url"]

    @property
    def cancel_url(self) -> str:
        """URL that cancels the run."""
        return self["cancel_url"]

    @property
    def resume_command(self) -> str:
        """Shell command that resumes the step."""
        return self["resume_command"]

    @property
    def cancel_command(self) -> str:
        """Shell command that cancels the run."""
        return self["cancel_command"]


class PauseRequest:
    """A pause the step asked for; applied by the engine when the step returns.

    This module's classes are plain classes, not dataclasses: `@dataclass` compiles its
    methods at every import, and every command imports them (docs/architecture.md)."""

    __slots__ = ("context", "data", "delay", "event", "kind", "label", "max_retries", "nonce",
                 "on_timeout", "schema", "timeout", "until")

    def __init__(self, kind: str, nonce: str = "", timeout: timedelta | None = None,
                 on_timeout: str | None = None, data: Any = None, delay: timedelta | None = None,
                 context: Any = None, max_retries: int = DEFAULT_MAX_RETRIES,
                 until: datetime | None = None, label: str | None = None,
                 event: str | None = None, schema: Any = None) -> None:
        self.kind = kind  # "suspend", "rerun", "sleep" or "event" (wait_for_event)
        self.nonce = nonce
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.data = data
        self.delay = delay
        self.context = context
        self.max_retries = max_retries
        self.until = until
        self.label = label  # names a suspension (`wfrun resume RUN --label NAME`)
        self.event = event  # wait_for_event: the name of the event it waits for
        self.schema = schema  # wait_for_event: the JSON Schema the event's data must match


class AskRequest:
    """An unanswered `ask()`: the step suspends; on resume it executes again from the top."""

    __slots__ = ("data", "index", "label", "nonce", "on_timeout", "schema", "timeout")

    def __init__(self, index: int, nonce: str, data: Any = None, timeout: timedelta | None = None,
                 on_timeout: str | None = None, schema: Any = None,
                 label: str | None = None) -> None:
        self.index = index
        self.nonce = nonce
        self.data = data
        self.timeout = timeout
        self.on_timeout = on_timeout
        self.schema = schema
        self.label = label


class AskSignal(BaseException):
    """Stops a step at an unanswered `ask()`.

    A BaseException, so that a step's `except Exception:` cannot swallow it."""


class Flow:
    """`ctx.flow`: suspend, rerun, sleep, route and exit, Pipedream-style."""

    def __init__(self, step: str, make_links: Callable[[str], Links], now: Callable[[], datetime]):
        self._step = step
        self._make_links = make_links
        # makes the URL that sends an event to this run (set by the engine before the step runs)
        self.make_event_url: Callable[[str], str] | None = None
        # why route(action) must fail the step (an action nobody matches), None if it may: set
        # by the engine, so the FlowError is raised where the step code routed
        self.route_problem: Callable[[str], str | None] | None = None
        self.in_iteration = False  # a foreach iteration: it cannot wait for an event
        # the nonce of the links this execution hands out (the engine records it before the
        # step starts, so a callback that arrives before the step returns is recognised)
        self.links_nonce: str | None = None
        self._now = now
        self.pause: PauseRequest | None = None
        self.action: str | None = None
        self.action_set = False
        self.exit_requested = False
        self.exit_reason: str | None = None
        self.misuse: str | None = None
        self.answers: list[Any] = []  # answers to this step's earlier asks, in order
        self.asks = 0
        self.asked: AskRequest | None = None

    def _request(self, request: PauseRequest, name: str) -> None:
        if self.asked is not None:
            self.misuse = (
                f"step '{self._step}' called flow.{name}() after an unanswered flow.ask() in the "
                "same execution; a step that asks cannot also suspend, rerun, sleep or wait for "
                "an event"
            )
            raise FlowError(self.misuse)
        if self.pause is not None:
            self.misuse = (
                f"step '{self._step}' called flow.{name}() after flow.{_called(self.pause)}() in "
                "the same execution; call only one of suspend, rerun, sleep and wait_for_event "
                "per execution"
            )
            raise FlowError(self.misuse)
        self.pause = request

    def suspend(
        self,
        timeout: timedelta | str | float | None = None,
        data: Any = None,
        on_timeout: str | None = None,
        label: str | None = None,
    ) -> Links:
        """Pause the run at the end of this step until it is resumed; returns its links.
        `label` names the suspension (`wfrun resume RUN --label NAME`)."""
        if on_timeout is not None and on_timeout not in ON_TIMEOUT:
            raise FlowError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, not {on_timeout!r}")
        request = PauseRequest(
            "suspend", nonce=self.links_nonce or random_token(), data=data, on_timeout=on_timeout,
            timeout=_duration(timeout, "timeout") if timeout is not None else None,
            label=_label(label),
        )
        self._request(request, "suspend")
        return self._make_links(request.nonce)

    def rerun(
        self,
        delay: timedelta | str | float,
        context: Any = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
    ) -> Links:
        """Run this step again after `delay`, passing `context`; returns its links."""
        if not isinstance(max_retries, int) or isinstance(max_retries, bool) or max_retries < 0:
            raise FlowError(f"max_retries must be a whole number >= 0, not {max_retries!r}")
        request = PauseRequest(
            "rerun", nonce=self.links_nonce or random_token(), delay=_duration(delay, "delay"),
            context=context, max_retries=max_retries,
        )
        self._request(request, "rerun")
        return self._make_links(request.nonce)

    def sleep(self, duration: timedelta | str | float) -> None:
        """Pause the run at the end of this step for `duration`."""
        until = self._now() + _duration(duration, "duration")
        self._request(PauseRequest("sleep", until=until), "sleep")

    def sleep_until(self, when: datetime | str) -> None:
        """Pause the run at the end of this step until `when` (UTC if naive)."""
        try:
            until = parse_iso(when)
        except ValueError as exc:
            raise FlowError(str(exc)) from None
        self._request(PauseRequest("sleep", until=until), "sleep_until")

    def ask(
        self,
        data: Any = None,
        timeout: timedelta | str | float | None = None,
        schema: Any = None,
        on_timeout: str | None = None,
        label: str | None = None,
    ) -> Any:
        """Suspend until resumed and return the resume data; the step executes again from the
        top on resume, and earlier asks return their stored answers in order. `label` names
        the suspension (`wfrun resume RUN --label NAME`)."""
        if self.asked is not None:  # the step caught the signal of an earlier ask: stop again
            raise AskSignal()
        index = self.asks
        self.asks += 1
        if index < len(self.answers):
            return self.answers[index]
        if self.pause is not None:
            self.misuse = (
                f"step '{self._step}' called flow.ask() after flow.{_called(self.pause)}() in "
                "the same execution; a step that pauses with suspend, rerun, sleep or "
                "wait_for_event cannot also ask"
            )
            raise FlowError(self.misuse)
        if on_timeout is not None and on_timeout not in ON_TIMEOUT:
            raise FlowError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, not {on_timeout!r}")
        label = _label(label)
        if schema is not None:
            from wfrun._schema import schema_problem

            problem = schema_problem(schema)
            if problem:
                raise FlowError(f"schema of ask #{index + 1}: invalid JSON Schema: {problem}")
        self.asked = AskRequest(
            index, random_token(), data=data, on_timeout=on_timeout, schema=schema,
            timeout=_duration(timeout, "timeout") if timeout is not None else None, label=label,
        )
        raise AskSignal()

    def event_url(self, name: str) -> str:
        """A URL that sends event `name` to this run (`POST` it; served by `wfrun serve`),
        valid for the life of the run."""
        name = _event_name(name)
        if self.make_event_url is None:
            raise FlowError("event_url() is only available to a step executed by wfrun")
        return self.make_event_url(name)

    def wait_for_event(
        self,
        name: str,
        timeout: timedelta | str | float | None = None,
        schema: Any = None,
        on_timeout: str | None = None,
    ) -> None:
        """Pause the run at the end of this step until event `name` is sent to the run (`wfrun
        send`, or a POST to `event_url(name)`); its data becomes this step's `resume_data`.
        An event sent before anything waits for it is kept in the run's inbox and taken at
        once. `schema` (JSON Schema) is checked when the event is sent."""
        name = _event_name(name)
        if self.in_iteration:
            raise FlowError(
                f"step '{self._step}' is a foreach iteration, which cannot wait for an event; "
                "wait for it in a step of its own after the foreach step"
            )
        if on_timeout is not None and on_timeout not in ON_TIMEOUT:
            raise FlowError(f"on_timeout must be one of {', '.join(ON_TIMEOUT)}, not {on_timeout!r}")
        if schema is not None:
            from wfrun._detach import stored_or_problem
            from wfrun._schema import schema_problem

            schema, problem = stored_or_problem(schema)
            problem = problem or schema_problem(schema)
            if problem:
                raise FlowError(f"schema of wait_for_event({name!r}): invalid JSON Schema: "
                                f"{problem}")
        request = PauseRequest(
            "event", nonce=self.links_nonce or random_token(), on_timeout=on_timeout,
            timeout=_duration(timeout, "timeout") if timeout is not None else None,
            event=name, schema=schema,
        )
        self._request(request, "wait_for_event")

    def route(self, action: str | None) -> None:
        """Set this step's action, which `when:` of later steps matches."""
        if action is not None and not isinstance(action, str):
            raise FlowError(f"an action must be a string, not {type(action).__name__}")
        problem = self.route_problem(action) if action is not None and self.route_problem \
            else None
        if problem is not None:
            raise FlowError(problem)
        self.action = action
        self.action_set = True

    def exit(self, reason: str | None = None) -> None:
        """End the run as completed after this step; the remaining steps are skipped."""
        self.exit_requested = True
        self.exit_reason = reason


def _called(pause: PauseRequest) -> str:
    """The flow method that asked for a pause (for messages)."""
    return "wait_for_event" if pause.kind == "event" else pause.kind


def _event_name(name: object) -> str:
    """An event name, as `wfrun send` takes it; FlowError otherwise."""
    if not isinstance(name, str) or not LABEL_PATTERN.fullmatch(name):
        raise FlowError(f"event name {name!r} is not valid: use 1 to 100 letters, digits or "
                        "'_.:@-', starting with a letter or digit")
    return name


def _label(label: object) -> str | None:
    """A suspension's label, as the manifest's `label:` takes it; FlowError otherwise."""
    if label is None:
        return None
    if not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label):
        raise FlowError(f"label {label!r} is not valid: use 1 to 100 letters, digits or "
                        "'_.:@-', starting with a letter or digit")
    return label


def _duration(value: timedelta | str | float, name: str) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise FlowError(f"{name}: {exc}") from None
