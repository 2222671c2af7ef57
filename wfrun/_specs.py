"""A validated workflow as the engine reads it: `Workflow`, its `StepSpec`s, `RetryPolicy`,
`Schedule`.

Plain classes, not dataclasses: `@dataclass` compiles its methods at every import, and every
command imports these (docs/architecture.md, "Start-up cost"). `wfrun.manifest` builds them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from wfrun._frozen import Frozen


class RetryPolicy(Frozen):
    """`retry:` of a step: `max_attempts` counts every execution, the first included."""

    __slots__ = ("backoff", "delay", "max_attempts", "max_delay")
    max_attempts: int
    delay: timedelta
    backoff: float
    max_delay: timedelta

    def __init__(self, max_attempts: int, delay: timedelta = timedelta(seconds=10),
                 backoff: float = 2.0, max_delay: timedelta = timedelta(hours=1)) -> None:
        self._set(max_attempts=max_attempts, delay=delay, backoff=backoff, max_delay=max_delay)

    def delay_after(self, failures: int) -> timedelta:
        """The wait before the next attempt, after `failures` failed executions (>= 1)."""
        seconds = self.delay.total_seconds() * self.backoff ** max(failures - 1, 0)
        return min(timedelta(seconds=seconds), self.max_delay)


class Approvals(Frozen):
    """`approvals:` of a wait step (SPEC §2, N-of-M approvals): how many of which approvers."""

    __slots__ = ("approvers", "required")
    required: int
    approvers: tuple[str, ...]

    def __init__(self, required: int, approvers: tuple[str, ...]) -> None:
        self._set(required=required, approvers=approvers)


class StepSpec(Frozen):
    """One step as the manifest declares it."""

    __slots__ = (
        "actions",
        "approvals",
        "foreach",
        "handler",
        "id",
        "input_from",
        "kind",
        "known_actions",
        "label",
        "needs",
        "on_timeout",
        "output_schema",
        "resume_schema",
        "retry",
        "sleep",
        "sleep_until",
        "suspend_schema",
        "timeout",
        "when",
        "workflow",
    )
    id: str
    kind: str  # "code", "wait", "sleep" or "workflow" (runs a child run)
    handler: str | None
    needs: tuple[str, ...]
    when: dict[str, tuple[str, ...]]
    sleep: timedelta | None
    sleep_until: datetime | None
    timeout: timedelta | None
    on_timeout: str | None
    resume_schema: Any
    suspend_schema: Any
    output_schema: Any
    retry: RetryPolicy | None
    workflow: str | None  # the child workflow's name (kind "workflow")
    input_from: str | None  # the step whose output is the child's input
    foreach: str | None  # the step over whose output list this step iterates
    actions: tuple[str, ...] | None  # its `actions:` as declared (None: the key is absent)
    known_actions: tuple[str, ...]  # `actions:` if declared, else what `when:`s name for it
    label: str | None  # names the step's suspensions (`wfrun resume RUN --label NAME`)
    approvals: Approvals | None  # `approvals:` of a wait step (N of M approvers decide)

    def __init__(
        self, id: str, kind: str, handler: str | None = None, needs: tuple[str, ...] = (),
        when: dict[str, tuple[str, ...]] | None = None, sleep: timedelta | None = None,
        sleep_until: datetime | None = None, timeout: timedelta | None = None,
        on_timeout: str | None = None, resume_schema: Any = None, suspend_schema: Any = None,
        output_schema: Any = None, retry: RetryPolicy | None = None, workflow: str | None = None,
        input_from: str | None = None, foreach: str | None = None,
        actions: tuple[str, ...] | None = None, known_actions: tuple[str, ...] | None = None,
        label: str | None = None, approvals: Approvals | None = None,
    ) -> None:
        if known_actions is None:  # the manifest passes what the other steps' `when:` name
            known_actions = actions or ()
        self._set(id=id, kind=kind, handler=handler, needs=needs,
                  when={} if when is None else when, sleep=sleep, sleep_until=sleep_until,
                  timeout=timeout, on_timeout=on_timeout, resume_schema=resume_schema,
                  suspend_schema=suspend_schema, output_schema=output_schema, retry=retry,
                  workflow=workflow, input_from=input_from, foreach=foreach, actions=actions,
                  known_actions=known_actions, label=label, approvals=approvals)


class Schedule(Frozen):
    """`schedule:` of a workflow (SPEC §11): when `tick` starts runs of it, and with what input.

    Exactly one of `cron` (a 5-field cron expression, read in `timezone`) and `every` (fire
    times are the whole multiples of it since 1970-01-01T00:00Z) is set. `every_text` is
    `every` for people (`15m`)."""

    __slots__ = ("catchup", "cron", "every", "every_text", "input", "overlap", "timezone")
    cron: str | None
    every: timedelta | None
    every_text: str | None
    timezone: str  # an IANA name (checked when the workflow's code is checked, see loader)
    input: Any  # the input of each run it starts ({} if not given)
    overlap: str  # "skip" (default), "allow" or "cancel_previous"
    catchup: str  # "latest" (default), "all" or "none"

    def __init__(self, cron: str | None = None, every: timedelta | None = None,
                 every_text: str | None = None, timezone: str = "UTC", input: Any = None,
                 overlap: str = "skip", catchup: str = "latest") -> None:
        self._set(cron=cron, every=every, every_text=every_text, timezone=timezone,
                  input={} if input is None else input, overlap=overlap, catchup=catchup)

    def describe(self) -> str:
        """The schedule in a few words: `cron 0 9 * * 1-5 (Europe/Berlin)` or `every 15m`."""
        if self.cron is not None:
            return f"cron {self.cron} ({self.timezone})"
        return f"every {self.every_text}"


class Workflow:
    """A validated workflow: its steps in manifest order and where its code lives."""

    def __init__(self, name: str, path: str, module_path: str, steps: dict[str, StepSpec],
                 description: str = "", input_schema: Any = None, output: str | None = None,
                 code_hash: dict[str, str] | None = None,
                 schedule: Schedule | None = None) -> None:
        self.name = name
        self.path = path
        self.module_path = module_path
        self.steps = steps
        self.description = description
        self.input_schema = input_schema
        self.output = output
        self.code_hash: dict[str, str] = {} if code_hash is None else code_hash
        self.schedule = schedule  # `schedule:` (SPEC §11), or None

    def __repr__(self) -> str:
        return f"Workflow({self.name!r}, {self.path!r})"

    def actions_for(self, step_id: str) -> list[str]:
        """The known actions of `step_id`: its `actions:` in their order if declared, else
        every action a `when:` of another step names for it, in manifest order ([] for a
        step that takes none, or that the workflow does not have)."""
        spec = self.steps.get(step_id)
        return list(spec.known_actions) if spec is not None else []

    def dependants(self, step_id: str) -> list[str]:
        """The steps that need `step_id` directly, in manifest order."""
        return [spec.id for spec in self.steps.values() if step_id in spec.needs]

    def downstream(self, step_id: str) -> set[str]:
        """Every step that depends on `step_id`, directly or not."""
        found: set[str] = set()
        frontier = [step_id]
        while frontier:
            current = frontier.pop()
            for spec in self.steps.values():
                if current in spec.needs and spec.id not in found:
                    found.add(spec.id)
                    frontier.append(spec.id)
        return found
