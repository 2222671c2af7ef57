"""Link callbacks (`wfrun serve`): open a link by its token, record a resume or a cancel
durably, continue the run later.

`wfrun serve` answers 202 once `accept_resume` returns (the resume is in the snapshot), then
calls `continue_run` in a background worker. If the process dies in between, the run is left
`running` with no step executing, which makes it due at once: the next `tick` continues it.
"""

from __future__ import annotations

from typing import Any

from wfrun.errors import ConflictError, NotFoundError, UsageError, WfrunError
from wfrun.ids import check_run_id
from wfrun.model import RUNNING, SUSPENDED, Run, StepState

from ._ask import expected_schema
from ._children import after_change
from ._composite import node_of, step_of
from ._inbox import accepted_entry, taken_message
from ._links import ACTIVE, EARLY, ENDED, ended_message, token_approver, token_state
from ._result import Result
from ._resume import ResumeRequest, resume
from ._runner_api import Reader, RunnerAPI
from ._schedule import resume_refusal


class OpenLink:
    """A link whose token is one of its run's: the run as loaded, the step or foreach
    iteration it names (`review`, `review[1]`), and whether its pause is open (`status`:
    active; early, for a step still executing; ended)."""

    __slots__ = ("approver", "run", "status", "step", "verb")

    def __init__(self, run: Run, step: str, status: str, approver: str | None = None,
                 verb: str = "resume") -> None:
        self.run = run
        self.step = step
        self.status = status
        self.approver = approver  # whose link it is (`approvals:`), or None
        self.verb = verb  # "resume" or "cancel"

    @property
    def ended(self) -> bool:
        """True if the link no longer works: its pause ended, or (a step still executing) a
        resume for it was accepted already."""
        return self.status == ENDED or self.taken is not None

    @property
    def taken(self) -> dict[str, Any] | None:
        """The resume already accepted for the executing step this resume link is for."""
        return accepted_entry(self.run, self.step) \
            if self.status == EARLY and self.verb == "resume" else None

    @property
    def node(self) -> StepState:
        """The state of the step or iteration the link names."""
        return node_of(self.run, self.step) or self.run.steps[step_of(self.step)]

    @property
    def manifest_step(self) -> str:
        """The manifest's step of the link: `review` for `review[1]`."""
        return step_of(self.step)

    def ended_message(self) -> str:
        """Why the link no longer works (told only to holders of a real token)."""
        taken = self.taken
        return ended_message(self.run, self.step) if taken is None \
            else taken_message(self.run, self.step, taken)


class Decoy:
    """A stored run to check the token of an unknown run against, read as the requested run
    would have been (the same loads) and holding the step paused with one nonce (the same
    token computations), so that a 404 costs the same whether the run exists. One per server:
    the newest stored run, found on first use."""

    def __init__(self) -> None:
        self.run_id: str | None = None

    def run(self, runner: RunnerAPI, step: str) -> Run:
        """The decoy run, holding `step`."""
        run: Run | None = None
        try:
            if self.run_id is None:
                self.run_id = max(runner.store.run_ids(), default="")
            if self.run_id:
                run = runner.store.load(self.run_id)
        except WfrunError:
            self.run_id = None
        if run is None:
            run = Run("decoy", "decoy", {}, "", "")
        if node_of(run, step) is None:
            run.steps[step] = StepState(status=SUSPENDED, pause={"nonce": "decoy"},
                                        nonces=["decoy"])
        return run


def open_link(runner: RunnerAPI, run_id: str, step: str, verb: str, token: str,
              decoy: Decoy | None = None) -> OpenLink:
    """Load the run a link points to and say whether its token's pause is open or ended.

    Raises NotFoundError, with no detail, for an invalid run id, an unknown run or step, or a
    token that is not this run's, step's and verb's. For an unknown run, the token is checked
    against `decoy` first, so that it costs what a wrong token does."""
    try:
        check_run_id(run_id)
        run = runner.store.load(run_id)
    except (NotFoundError, UsageError):
        if decoy is not None:  # no timing oracle for which runs exist
            token_state(runner.store.secret_key(), decoy.run(runner, step), step, verb, token)
        raise NotFoundError("not found") from None
    state = token_state(runner.store.secret_key(), run, step, verb, token)
    if state is None:
        raise NotFoundError("not found")
    return OpenLink(run, step, state, token_approver(token), verb)


def link_expects(reader: Reader, link: OpenLink) -> tuple[Any, list[str], str, str | None]:
    """What a resume link's step takes: the schema its data must match (an ask's included),
    its known actions, the workflow's description (loads the workflow), and why a resume
    is refused, the step no longer existing in the workflow (None: it exists)."""
    workflow = reader.workflow_of(link.run, [])
    spec = workflow.steps.get(link.manifest_step)
    schema = expected_schema(node_of(link.run, link.step), spec)
    actions = list(workflow.actions_for(link.manifest_step)) if spec is not None else []
    refused = resume_refusal(link.run, link.manifest_step, workflow)
    if refused is None and link.run.parent is not None:
        from ._tree import parent_refusal  # imported on use: nested runs' modules

        refused = parent_refusal(reader, link.run)
    return schema, actions, workflow.description, None if refused is None else refused.message


def accept_resume(runner: RunnerAPI, run_id: str, step: str, token: str, data: Any,
                  action: str | None, request: dict[str, Any]) -> Result:
    """Validate and durably record a link's resume without executing any step.

    Invalid data raises SchemaViolation and writes nothing; a token whose pause ended
    meanwhile (a concurrent resume won) raises ConflictError. The run is left `running` (due
    at once) if a code step is to execute next: `continue_run` or the next tick executes it."""
    return resume(runner, ResumeRequest(run_id, data, step, action, request=request,
                                        token=token, approver=token_approver(token)))


def accept_cancel(runner: RunnerAPI, run_id: str, step: str, token: str,
                  reason: str | None) -> Result:
    """Cancel the run if the cancel token's pause is still open (checked under the lock)."""
    key = runner.store.secret_key()

    def still_open(run: Run) -> None:
        if token_state(key, run, step, "cancel", token) not in (ACTIVE, EARLY):
            raise ConflictError(ended_message(run, step))

    return runner.cancel(run_id, reason, check=still_open)


def continue_run(runner: RunnerAPI, run_id: str) -> Result:
    """Execute what an accepted resume made ready, if no other process is executing the run."""
    run = runner.store.load(run_id)
    warnings: list[str] = []
    if run.status != RUNNING:
        after_change(runner, run, warnings)  # a child run the resume finished: tell its parent
        return Result(run, None, warnings)
    workflow = runner.workflow_of(run, warnings)
    result = runner.continue_if_woken(run, workflow, warnings)
    after_change(runner, result.run, result.warnings)
    return result
