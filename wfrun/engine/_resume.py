"""Resuming a run, one path for all: `wfrun resume` (a step, an address or a label), the test
harness, a resume link (HTTP) and the part of an address that a child run takes.

The path: find the target (a step, or a foreach iteration; an address into a child run resumes
the child run, then shows the addressed run); check the data against the step's
`resume_schema` and the action against its known actions; then record the resume as one state
change before executing anything, or, for a step still executing, keep it in the run's inbox
until the step pauses (SPEC §3, "Early callbacks are never lost"). A link's resume is only
recorded (`wfrun serve` continues the run in the background); any other resume then executes
what follows, if this process can claim the run, and tells the run's parent.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from wfrun import _schema, loader
from wfrun._specs import StepSpec, Workflow
from wfrun.errors import ConflictError, NotFoundError, UsageError
from wfrun.ids import check_run_id
from wfrun.manifest import LABEL_PATTERN
from wfrun.model import CANCELLED, PAUSE_EVENT, RUNNING, SUSPENDED, Run, StepState

from ._actions import check_resume_action
from ._approvals import check_approver, decide
from ._ask import answer_ask, ask_nonce
from ._children import after_change
from ._composite import apply_iteration_resume, has_composites, node_of, step_of
from ._history import Events
from ._inbox import StepNotExecuting, buffer_resume, executing_nonce
from ._links import ACTIVE, EARLY, ended_message, remember_nonces, token_state
from ._result import Result
from ._runner_api import RunnerAPI
from ._schedule import resume_refusal
from ._transitions import apply_resume, resumable_steps


class ResumeRequest:
    """One resume, however it came: which run and what in it (a step or an address, or a
    label), the data and action, the callback request step code sees (`ctx.run.
    callback_request`; a CLI one if None), a link's token (None: not from a link), and the
    approver who decides (`approvals:`; from `--as`, or from an approver's link token)."""

    __slots__ = ("action", "approver", "callback", "data", "label", "outer", "request", "run_id",
                 "step", "token")

    def __init__(self, run_id: str, data: Any = None, step: str | None = None,
                 action: str | None = None, *, label: str | None = None,
                 request: dict[str, Any] | None = None, token: str | None = None,
                 approver: str | None = None) -> None:
        self.run_id = run_id
        self.data = data
        self.step = step
        self.action = action
        self.label = label
        self.request = request
        self.token = token
        self.approver = approver
        # what step code sees as `ctx.run.callback_request`
        self.callback: dict[str, Any] = request or {
            "body": data, "headers": {}, "query": {}, "method": None, "source": "cli"}
        self.outer = ""  # in a child run: the address of its node in the runs above (messages)

    def inside(self, run_id: str, address: str | None, via: str) -> ResumeRequest:
        """The same resume, for `address` in the child run `run_id` of the node at `via`."""
        inner = ResumeRequest(run_id, self.data, address, self.action, request=self.request,
                              approver=self.approver)
        inner.outer = f"{self.outer}/{via}" if self.outer else via
        return inner


class _Target:
    """What a resume is for: a step, or a foreach iteration (`name` `step[2]`, `index` 2)."""

    __slots__ = ("index", "name", "state", "step_id")

    def __init__(self, run: Run, name: str) -> None:
        self.name = name
        self.step_id = step_of(name)
        self.index = int(name[len(self.step_id) + 1:-1]) if name != self.step_id else None
        self.state: StepState | None = node_of(run, name)


def resume(runner: RunnerAPI, req: ResumeRequest) -> Result:
    """Hand data to a suspended (or rerun-pending) step or iteration and continue the run;
    for a link, record it only (SchemaViolation, UsageError or ConflictError write nothing)."""
    if req.token is None:
        check_run_id(req.run_id)  # a link's run id was checked when its token was
    run = runner.store.load(req.run_id)
    if run.parent is not None:
        from ._tree import parent_refusal  # imported on use: nested runs' modules

        refused = parent_refusal(runner, run)
        if refused is not None:
            raise refused
    found = _locate(runner, run, req)
    if not isinstance(found, _Target):
        return found  # resumed inside a child run
    warnings: list[str] = []
    workflow = runner.workflow_to_continue(run, warnings)
    refused = resume_refusal(run, found.step_id, workflow)
    if refused is not None:
        raise refused
    spec = workflow.steps[found.step_id]
    state = found.state
    if state is not None and state.status == RUNNING and executing_nonce(state) is None \
            and req.token is None:  # executing, holding no links (a child run's step, say)
        inside = f"; to hand data to a step of its child run, name it: --step {found.name}/STEP" \
            if spec.kind == "workflow" else ""
        raise ConflictError(f"step '{found.name}' of run {run.run_id} is running, not "
                            f"suspended; nothing to resume{inside}")
    if spec.approvals is not None or req.approver is not None:
        check_approver(spec, found.state, found.name, run.run_id, req.approver, req.action)
    if spec.resume_schema is not None:
        loader.check_schemas(workflow)
        shown = f"{req.outer}/{found.name}" if req.outer else found.name  # as the caller wrote it
        _schema.validate(spec.resume_schema, req.data, f"resume data for step '{shown}'")
    check_resume_action(workflow, found.name, req.action, run.run_id, found.state)
    if req.token is not None:
        return _record_link(runner, run.run_id, workflow, spec, found, req, warnings)
    if executing_nonce(found.state) is not None:
        early = _keep_early(runner, run.run_id, workflow, found, req, warnings)
        if early is not None:
            return early
    asked = ask_nonce(found.state)

    def mutate(r: Run, events: Events) -> None:
        _apply(r, workflow, spec, found, req, runner.clock.now(), events, asked)

    result = runner.drive(run.run_id, workflow, mutate, warnings)
    after_change(runner, result.run, result.warnings)
    return result


def _locate(runner: RunnerAPI, run: Run, req: ResumeRequest) -> _Target | Result:
    """The target of a resume in `run`; for an address inside a child run, the child run is
    resumed and the addressed run, as it is then, returned."""
    if req.token is not None:
        return _Target(run, req.step or "")  # a link names its step or iteration exactly
    step = req.step
    if req.label is not None:
        if not LABEL_PATTERN.fullmatch(req.label):
            raise UsageError(f"--label {req.label!r} is not a valid label: use 1 to 100 letters, "
                             "digits or '_.:@-', starting with a letter or digit")
        from ._nested import label_target  # imported on use: nested runs' modules

        step = label_target(runner, run, req.label, runner.command)
    if run.finished:
        raise ConflictError(_finished_message(runner, run, step))
    if not is_address(run, step):
        return _Target(run, plain_target(run, step))
    from ._nested import InChild, locate

    found = locate(runner, run, step)
    if isinstance(found, InChild):
        child = resume(runner, req.inside(found.run_id, found.address, found.via))
        warnings: list[str] = []
        top = runner.store.load(run.run_id)
        return Result(top, runner.workflow_of(top, warnings), [*child.warnings, *warnings],
                      accepted=child.accepted)  # kept in the child's inbox: said so
    if found is None or isinstance(found, str):
        return _Target(run, plain_target(run, found))
    return _Target(run, str(found))  # a foreach iteration


def _apply(r: Run, workflow: Workflow, spec: StepSpec, target: _Target, req: ResumeRequest,
           now: datetime, events: Events, asked: str | None) -> None:
    """Record the resume in the run (under its lock). `asked`: the nonce of the ask the
    caller saw the target at (None: no ask)."""
    if target.index is None and req.approver is not None:
        decided = decide(r.run_id, r.steps[spec.id], target.name, req.approver, req.data,
                         str(req.action), req.callback, now, events)
        if decided is not None:  # the decision is reached: the step completes with it
            apply_resume(r, spec, decided[0], decided[1], req.callback, now, events)
        return
    if target.index is None:
        if not answer_ask(r, spec, req.data, req.action, req.callback, now, events, asked):
            apply_resume(r, spec, req.data, req.action, req.callback, now, events)
        return
    if r.finished:
        raise ConflictError(f"run {r.run_id} is {r.status}; it cannot be resumed")
    apply_iteration_resume(r, workflow, spec.id, target.index, req.data, req.action,
                           req.callback, now, events, asked)


def _keep_early(runner: RunnerAPI, run_id: str, workflow: Workflow, target: _Target,
                req: ResumeRequest, warnings: list[str]) -> Result | None:
    """Keep a resume for a step that is still executing in the run's inbox; None if the
    step paused (or ended) meanwhile, so the caller resumes it as usual."""
    step = target.name

    def keep(r: Run, events: Events) -> None:
        state = node_of(r, step)
        if executing_nonce(state) is None:
            raise StepNotExecuting(step)
        if state is not None and state.answers:  # executing again since an ask was answered
            raise ConflictError(
                f"step '{step}' of run {run_id} is executing again since its ask "
                f"#{len(state.answers)} was answered; this resume is refused rather than answer "
                "its next ask by mistake: give it once the step asks ('wfrun pending' shows it)")
        if state is not None and state.resumed_at and (state.trigger or {}).get("reason") \
                == "resume":  # a rerun resumed a moment ago: this is a second resume of it
            raise ConflictError(
                f"step '{step}' of run {run_id} was already resumed at {state.resumed_at}; it "
                "is executing again with that data, and this resume is refused (resume it "
                "again once it pauses: 'wfrun pending' shows it)")
        buffer_resume(r, step, req.data, req.action, req.callback, runner.clock.now(), events)

    try:
        run, _ = runner.transition(run_id, workflow, keep, execute=False)
    except StepNotExecuting:
        return None
    return Result(run, workflow, warnings, accepted=True)


def _record_link(runner: RunnerAPI, run_id: str, workflow: Workflow, spec: StepSpec,
                 target: _Target, req: ResumeRequest, warnings: list[str]) -> Result:
    """Durably record a link's resume without executing any step, if its token still opens
    the pause (checked under the lock: a concurrent resume that won makes it ConflictError).
    The run is left `running` (due at once) if a code step is to execute next; a resume for a
    step still executing is kept in the run's inbox (`Result.accepted`)."""
    key = runner.store.secret_key()
    step = target.name
    accepted = False

    def mutate(r: Run, events: Events) -> None:
        nonlocal accepted
        remember_nonces(r)
        found = token_state(key, r, step, "resume", req.token or "")
        if found == EARLY:
            buffer_resume(r, step, req.data, req.action, req.callback, runner.clock.now(),
                          events)
            accepted = True
            return
        if found != ACTIVE:
            raise ConflictError(ended_message(r, step))
        _apply(r, workflow, spec, target, req, runner.clock.now(), events,
               ask_nonce(node_of(r, step)))

    run, _ = runner.transition(run_id, workflow, mutate, execute=False)
    return Result(run, workflow, warnings, accepted=accepted)


# -- which step a resume is for ------------------------------------------------------------------


def is_address(run: Run, step: str | None) -> bool:
    """True if finding the target needs `_nested.py`: the run iterates or has child runs, or
    `step` is an address."""
    return has_composites(run) or (step is not None and ("/" in step or "[" in step))


def plain_target(run: Run, step: str | None) -> str:
    """`step` if the run has it, else the one step that can take data now; NotFoundError,
    ConflictError (none can) or UsageError (several can) otherwise."""
    candidates = resumable_steps(run)
    if step is not None:
        if step not in run.steps:
            raise NotFoundError(
                f"run {run.run_id} has no step '{step}' (steps: {', '.join(run.steps)})"
            )
        return step
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        events = [sid for sid, s in run.steps.items()
                  if s.status == SUSPENDED and (s.pause or {}).get("kind") == PAUSE_EVENT]
        if len(events) == 1:  # it takes an event, not a resume: say how to send it
            from ._event_waits import event_wait_message  # imported on use, as by _transitions

            raise ConflictError(event_wait_message(run.run_id, events[0], run.steps[events[0]]))
        if events:
            names = ", ".join(f"'{(run.steps[sid].pause or {}).get('event')}' ({sid})"
                              for sid in events)
            raise ConflictError(f"run {run.run_id} waits for events {names}, not for a resume; "
                                f"send one with 'wfrun send {run.run_id} EVENT --data JSON'")
        if any(s.resumed_at for s in run.steps.values()):  # a resume won the race: say when
            raise ConflictError(finished_run_message(run, None))
        # A step executing now takes data only when named (SPEC §3): the data is kept until
        # it pauses, and discarded if it ends without pausing.
        executing = [sid for sid, s in run.steps.items() if s.status == RUNNING and s.exec_nonce]
        hint = (f"; step '{executing[0]}' is executing: to hand it data when it pauses, name "
                f"it with --step {executing[0]}") if len(executing) == 1 else ""
        raise ConflictError(
            f"run {run.run_id} is {run.status} and has no step waiting for data{hint}"
        )
    raise UsageError(
        f"run {run.run_id} has several steps that can take data ({', '.join(candidates)}); "
        "choose one with --step"
    )


def _finished_message(runner: RunnerAPI, run: Run, step: str | None) -> str:
    """Why a finished run cannot be resumed, naming when the addressed step was resumed (not
    for a cancelled run: the cancel is why, whatever was resumed before it)."""
    if run.status != CANCELLED and is_address(run, step):  # in an iteration or a child run
        from ._tree import latest_resumed  # imported on use: nested runs' modules

        found = latest_resumed(runner, run, step)
        if found is not None:
            return (f"step '{found[1]}' of run {run.run_id} was already resumed at {found[0]}; "
                    f"the run is {run.status} and its data is kept")
    return finished_run_message(run, step)


def finished_run_message(run: Run, step: str | None) -> str:
    """Why a finished run cannot be resumed, naming when its step was resumed if it was."""
    resumed = [(s.resumed_at, sid) for sid, s in run.steps.items()
               if s.resumed_at and (step is None or sid == step)]
    if resumed and run.status != CANCELLED:
        at, sid = max(resumed)
        return (f"step '{sid}' of run {run.run_id} was already resumed at {at}; the run is "
                f"{run.status} and its data is kept")
    return f"run {run.run_id} is {run.status}; it cannot be resumed"
