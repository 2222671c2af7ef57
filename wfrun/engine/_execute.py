"""Executing one step's code: build its `ctx`, call the function (sync or async), catch what it raises."""

from __future__ import annotations

import functools
import inspect
import os
import traceback
from collections.abc import Callable
from datetime import datetime
from typing import Any

from wfrun._detach import detached
from wfrun.context import Context, RunInfo, StepExports, StepsView
from wfrun.errors import Interrupted, interrupts_are_marked
from wfrun.flow import AskSignal, Flow, Links
from wfrun.model import Run

from ._capture import Sink, StepOutput, storable
from ._transitions import Outcome


def exports_of(run: Run) -> StepsView:
    """What every step of the run exports to later steps (`ctx.steps`): copies, made when a
    step reads them, so that what step code does to them never reaches the run's state."""
    steps = run.steps

    def export(sid: str) -> StepExports:
        s = steps[sid]
        return StepExports(
            output=detached(s.output), resume_data=detached(s.resume_data),
            suspend_data=detached(s.suspend_data), action=s.action, status=s.status,
            runs=s.runs,
        )

    return StepsView(list(steps), export)


def execute(
    function: Callable[..., Any],
    run: Run,
    step_id: str,
    make_links: Callable[[str], Links],
    now: Callable[[], datetime],
    sink: Sink | None = None,
    *,
    index: int | None = None,
    item: Any = None,
    event_url: Callable[[str], str] | None = None,
    route_problem: Callable[[str], str | None] | None = None,
) -> Outcome:
    """Call the step's function once and describe what happened; never raises for step errors.

    For a foreach iteration, `index` and `item` say which (`ctx.index`, `ctx.item`);
    `event_url` makes the URLs of `ctx.flow.event_url(name)`; `route_problem` says why
    `ctx.flow.route(action)` must fail (raised there, in the step's code)."""
    state = run.steps[step_id]
    if index is not None:
        state = (state.iterations or [])[index]
    trigger = state.trigger or {}
    flow = Flow(step_id if index is None else f"{step_id}[{index}]", make_links, now)
    flow.answers = [detached(answer) for answer in state.answers]
    flow.links_nonce = state.exec_nonce
    flow.make_event_url, flow.in_iteration = event_url, index is not None
    flow.route_problem = route_problem
    capture = StepOutput(step_id if index is None else f"{step_id}[{index}]", state.runs, now,
                         sink)  # what it prints, for `wfrun logs`
    ctx = Context(
        input=run.input, run_id=run.run_id, workflow=run.workflow, step=step_id,
        steps=exports_of(run),
        run=RunInfo(runs=state.runs, context=detached(state.context),
                    callback_request=detached(trigger.get("callback_request"))),
        flow=flow, on_log=capture.log, item=detached(item), index=index,
    )
    outcome = Outcome()
    try:
        # What a step prints is kept and echoed to stderr: stdout belongs to wfrun (--json).
        with capture:
            result = function(ctx)
            if type(result) not in _PLAIN and inspect.isawaitable(result):
                import asyncio  # only for async steps: asyncio costs ~30 ms to import

                result = asyncio.run(_await(result))
        outcome.output = result
    except AskSignal:
        pass  # an unanswered ask: flow.asked says what the step waits for
    except KeyboardInterrupt as exc:
        if isinstance(exc, Interrupted) or not interrupts_are_marked():
            raise  # a signal: the command stops, and the run is recovered by the next tick
        _failed(outcome, step_id, exc, capture)  # raised by the step's own code
    except (Exception, SystemExit) as exc:
        _failed(outcome, step_id, exc, capture)
    if flow.misuse and outcome.error is None:
        outcome.error = {"step": step_id, "type": "FlowError", "message": flow.misuse}
    outcome.pause = flow.pause
    outcome.action, outcome.action_set = flow.action, flow.action_set
    outcome.exit_requested, outcome.exit_reason = flow.exit_requested, flow.exit_reason
    outcome.logs = ctx.log_records()
    outcome.ask = flow.asked
    outcome.output_lost = capture.broken
    return outcome


def _failed(outcome: Outcome, step_id: str, exc: BaseException, capture: StepOutput) -> None:
    """Record what a step raised as its error (type, message, traceback of workflow code); a
    lone surrogate in them escaped, as UTF-8 can store it (`storable`)."""
    outcome.error = {"step": step_id, "type": type(exc).__name__, "message": storable(str(exc))}
    outcome.traceback = storable(traceback.format_exc())
    where = workflow_traceback(exc)
    if where is not None:
        outcome.error["traceback"] = storable(where)
    capture.emit("error", f"{type(exc).__name__}: {exc}")


# what steps mostly return: never awaitable (the check for an awaitable is an ABC's, slower)
_PLAIN = frozenset((type(None), bool, int, float, str, list, dict))


async def _await(awaitable: Any) -> Any:
    return await awaitable


MAX_FRAMES = 5  # of workflow code, the innermost (a RecursionError has a thousand)
MAX_EXCEPTION_TEXT = 1000  # the message is also the error's "message", whole
_OWN = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the wfrun package


def workflow_traceback(exc: BaseException) -> str | None:
    """The traceback of an exception a step raised, with only the frames of workflow code: the
    step's module and what it imports from its project, not wfrun, the standard library or
    installed packages (the whole traceback is kept in the run's history). None if no frame
    is workflow code."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if _is_workflow_code(f.filename)]
    if not frames:
        return None
    lines = ["Traceback (most recent call last, workflow code only):\n"]
    if len(frames) > MAX_FRAMES:
        lines.append(f"  ... {len(frames) - MAX_FRAMES} earlier frame(s) left out\n")
        frames = frames[-MAX_FRAMES:]
    lines.extend(traceback.StackSummary.from_list(frames).format())
    text = "".join(traceback.format_exception_only(type(exc), exc))
    if len(text) > MAX_EXCEPTION_TEXT:
        text = text[:MAX_EXCEPTION_TEXT] + "…\n"
    return "".join(lines) + text


def _is_workflow_code(filename: str) -> bool:
    if not filename or filename.startswith("<"):  # <frozen ...>, <string>: not a file of the project
        return False
    path = os.path.abspath(filename)
    return not any(path == root or path.startswith(root + os.sep) for root in _not_workflow_code())


@functools.cache
def _not_workflow_code() -> tuple[str, ...]:
    """wfrun's own directory, the standard library's and the installed packages' (looked up
    on the first failure only)."""
    import site
    import sysconfig

    roots = {_OWN}
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib", "purelib", "platlib"):
        if paths.get(key):
            roots.add(paths[key])
    roots.update(getattr(site, "getsitepackages", list)())
    if site.ENABLE_USER_SITE and site.USER_SITE:
        roots.add(site.USER_SITE)
    roots.update([os.path.realpath(root) for root in roots])
    return tuple(os.path.abspath(root) for root in roots)
