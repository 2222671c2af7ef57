"""The run and its steps as plain data: statuses, snapshots to and from JSON, no I/O."""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1

# Run statuses (SPEC §4).
RUNNING = "running"
SUSPENDED = "suspended"
WAITING = "waiting"
COMPLETED = "completed"
FAILED = "failed"
CANCELLED = "cancelled"
FINISHED = frozenset({COMPLETED, FAILED, CANCELLED})
RUN_STATUSES = (RUNNING, SUSPENDED, WAITING, COMPLETED, FAILED, CANCELLED)

# Step statuses: the run's plus these two.
PENDING = "pending"
SKIPPED = "skipped"
SETTLED = frozenset({COMPLETED, SKIPPED})

# Kinds of pause a step can be in.
PAUSE_SUSPEND = "suspend"
PAUSE_RERUN = "rerun"
PAUSE_SLEEP = "sleep"
PAUSE_RETRY = "retry"
PAUSE_EVENT = "event"  # ctx.flow.wait_for_event(name): the step is suspended until it is sent

JsonValue = Any


class StepState:
    """Everything the run remembers about one step.

    A plain class, not a dataclass: `@dataclass` compiles its methods at every import, and
    every command imports this (docs/architecture.md, "Start-up cost"). The attributes are
    assigned in snapshot order: `to_dict` writes `__dict__` as it is."""

    def __init__(
        self,
        status: str = PENDING,
        runs: int = 0,
        output: JsonValue = None,
        action: str | None = None,
        resume_data: JsonValue = None,
        suspend_data: JsonValue = None,
        error: dict[str, str] | None = None,
        started_at: str | None = None,
        finished_at: str | None = None,
        pause: dict[str, Any] | None = None,
        trigger: dict[str, Any] | None = None,
        context: JsonValue = None,
        reruns: int = 0,
        failures: int = 0,
        resumed_at: str | None = None,
        child: str | None = None,
        iterations: list[StepState] | None = None,
        answers: list[JsonValue] | None = None,
        nonces: list[str] | None = None,
        exec_nonce: str | None = None,
        rerun_limit: int | None = None,
    ) -> None:
        self.status = status
        self.runs = runs
        self.output = output
        self.action = action
        self.resume_data = resume_data
        self.suspend_data = suspend_data
        self.error = error
        self.started_at = started_at
        self.finished_at = finished_at
        # {"kind", "since", "due_at", and per kind: "on_timeout", "nonce", "max_retries"}
        self.pause = pause
        # why a pending step executes again: {"reason": rerun|retry|recovered|resume, ...}
        self.trigger = trigger
        self.context = context
        self.reruns = reruns
        self.failures = failures
        self.resumed_at = resumed_at
        # a `workflow:` step (or one foreach iteration of it): the id of its child run
        self.child = child
        # a `foreach:` step: one state per element, in order (None until it first executes)
        self.iterations = iterations
        self.answers: list[JsonValue] = [] if answers is None else answers  # each ask()'s data
        # nonces of this step's recent pauses, so a link of an ended pause is told apart (409)
        self.nonces: list[str] = [] if nonces is None else nonces
        # the nonce of the links handed to the step's current execution: set when it starts
        # executing, kept if that execution is recovered, cleared once its outcome is recorded
        self.exec_nonce = exec_nonce
        # set (to max_retries) when a rerun() was ignored because the limit was reached: the
        # step's return value became its output and the run went on (shown as a warning)
        self.rerun_limit = rerun_limit

    def __repr__(self) -> str:
        return f"StepState({self.__dict__!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is StepState and other.__dict__ == self.__dict__

    def to_dict(self) -> dict[str, Any]:
        """The step as it is stored in the snapshot."""
        # Only what is set: a key left out reads back as its default (`from_dict`), and each
        # key fewer is less to encode on every write of the run. (One pass: a run's every step
        # is turned into a dict at each write.)
        omitted = _OMITTED_WHEN_EMPTY
        data = {key: value for key, value in self.__dict__.items()
                if value is not None and (value or key not in omitted)}
        if self.iterations is not None:  # only what differs from a fresh step: they add up
            data["iterations"] = [
                {k: v for k, v in it.to_dict().items() if v != _FRESH.get(k)}
                for it in self.iterations
            ]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepState:
        """Rebuild a step from its snapshot form (unknown keys are ignored)."""
        known = {k: v for k, v in data.items() if k in _STEP_FIELDS}
        if known.get("iterations") is not None:
            known["iterations"] = [cls.from_dict(it) for it in known["iterations"]]
        return cls(**known)

    def keep_nonce(self, nonce: str | None) -> None:
        """Remember the nonce of links this step handed out (the latest `MAX_NONCES`), so that
        a link of a pause that has ended is told it was used rather than not found."""
        if nonce and nonce not in self.nonces:
            self.nonces = [*self.nonces, nonce][-MAX_NONCES:]

    def due_times(self) -> list[str]:
        """The due times of this step's timers and deadlines, its iterations' included."""
        dues = [self.pause["due_at"]] if self.pause and self.pause.get("due_at") else []
        for it in self.iterations or ():
            dues.extend(it.due_times())
        return dues


MAX_NONCES = 8  # recent link nonces kept per step (`StepState.keep_nonce`)
_FRESH = StepState().__dict__
_STEP_FIELDS = frozenset(_FRESH)
_OMITTED_WHEN_EMPTY = frozenset(("reruns", "failures", "answers", "nonces"))


class Run:
    """One execution of a workflow: its input, its steps and where it stands (a plain class
    for the same reason as StepState; attributes in snapshot order)."""

    def __init__(
        self,
        run_id: str,
        workflow: str,
        input: JsonValue,
        created_at: str,
        updated_at: str,
        status: str = RUNNING,
        output: JsonValue = None,
        error: dict[str, str] | None = None,
        steps: dict[str, StepState] | None = None,
        manifest_path: str = "",
        code_hash: dict[str, str] | None = None,
        running_since: str | None = None,
        revision: int = 0,
        parent: dict[str, Any] | None = None,
        inbox: list[dict[str, Any]] | None = None,
    ) -> None:
        self.run_id = run_id
        self.workflow = workflow
        self.input = input
        self.created_at = created_at
        self.updated_at = updated_at
        self.status = status
        self.output = output
        self.error = error
        self.steps: dict[str, StepState] = {} if steps is None else steps
        self.manifest_path = manifest_path
        self.code_hash: dict[str, str] = {} if code_hash is None else code_hash
        self.running_since = running_since
        self.revision = revision
        # a child run (a `workflow:` step of another run): {"run_id", "step", "index",
        # "notified"}; "notified" is the status the parent last recorded (see Run.next_due)
        self.parent = parent
        # what was accepted for the run before anything could take it (see engine/_inbox.py)
        self.inbox: list[dict[str, Any]] = [] if inbox is None else inbox

    def __repr__(self) -> str:
        return f"Run({self.__dict__!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is Run and other.__dict__ == self.__dict__

    @property
    def finished(self) -> bool:
        """True once the run completed, failed or was cancelled."""
        return self.status in FINISHED

    def next_due(self) -> str | None:
        """When `tick` must next look at this run (ISO time), or None if never.

        A run that is executing is due at once, so that if its process dies the next tick
        finds it and recovers it; a paused run is due at its earliest timer or deadline; a
        child run whose parent has not yet recorded its status is due at once.
        """
        if self.parent is not None and self.status != RUNNING \
                and self.parent.get("notified") != self.status:
            return self.updated_at  # its parent has not recorded this status yet: tick tells it
        if self.finished:
            return None
        if self.status == RUNNING:
            return self.running_since or self.updated_at
        dues = [due for s in self.steps.values() for due in s.due_times()]
        return min(dues) if dues else None

    def to_dict(self) -> dict[str, Any]:
        """The run as stored in its snapshot."""
        omitted = _RUN_OMITTED_WHEN_EMPTY
        data = {k: v for k, v in self.__dict__.items()
                if k != "steps" and (v or k not in omitted)}
        data["steps"] = {sid: s.to_dict() for sid, s in self.steps.items()}
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Run:
        """Rebuild a run from its snapshot form; raises KeyError/TypeError if malformed."""
        fields = {k: v for k, v in data.items() if k in _RUN_FIELDS and k != "steps"}
        run = cls(**fields)
        run.steps = {sid: StepState.from_dict(s) for sid, s in data["steps"].items()}
        return run


_RUN_OMITTED_WHEN_EMPTY = frozenset(("parent", "inbox"))
_RUN_FIELDS = frozenset(Run("", "", None, "", "").__dict__)
