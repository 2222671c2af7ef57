"""Workflow manifests: YAML -> a validated `Workflow`; every error names file, step and key.

The top level and the steps are checked here; `schedule:` in wfrun._manifest_schedule,
`actions:` and `approvals:` in wfrun._manifest_actions."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from wfrun._manifest_actions import (
    approval_actions,
    parse_actions,
    parse_approvals,
    with_known_actions,
)
from wfrun._manifest_checker import Checker, duration, kind_of, shown
from wfrun._manifest_schedule import parse_schedule
from wfrun._specs import RetryPolicy, StepSpec, Workflow
from wfrun.durations import parse_iso

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
STEP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
# a suspension's label (`label:`, `suspend(label=)`, `ask(label=)`, `resume --label`)
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}")
ON_TIMEOUT = ("cancel", "resume", "fail")
DEFAULT_TIMEOUT = timedelta(hours=24)
TOP_KEYS = ("name", "description", "module", "input_schema", "output", "steps", "schedule")
STEP_KEYS = (
    "id", "handler", "needs", "when", "wait", "sleep", "sleep_until", "timeout", "on_timeout",
    "resume_schema", "suspend_schema", "output_schema", "retry", "workflow", "input_from",
    "foreach", "actions", "label", "approvals",
)
RETRY_KEYS = ("max_attempts", "delay", "backoff", "max_delay")
SCHEMA_KEYS = ("resume_schema", "suspend_schema", "output_schema")
# Keys that make no sense on a step without code, by kind.
_NOT_FOR = {
    "wait": ("handler", "retry", "sleep", "sleep_until", "output_schema", "suspend_schema"),
    "sleep": ("handler", "retry", "timeout", "on_timeout", "resume_schema", "suspend_schema",
              "output_schema", "actions", "label", "approvals"),
    "workflow": ("handler", "retry", "timeout", "on_timeout", "resume_schema", "suspend_schema",
                 "output_schema", "actions", "label", "approvals"),
    "code": ("approvals",),
}


def parse_manifest(data: object, path: str, default_name: str) -> tuple[Workflow, str | None]:
    """Validate a loaded YAML document; return the workflow and its declared module (if any)."""
    check = Checker(path)
    if not isinstance(data, dict):
        raise check.fail(f"the manifest must be a YAML mapping, not {kind_of(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise check.fail(f"unknown key (known keys: {', '.join(TOP_KEYS)})", key=str(key))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise check.fail(f"{shown(name)} is not a valid name (use [a-z0-9][a-z0-9_-]*)", key="name")
    module = data.get("module")
    if module is not None and (not isinstance(module, str) or not module.endswith(".py")):
        raise check.fail("must be the file name of a .py module", key="module")
    description = data.get("description", "")
    if not isinstance(description, str):
        raise check.fail("must be a string", key="description")
    raw_steps = data.get("steps")
    if not isinstance(raw_steps, list) or not raw_steps:
        raise check.fail("must be a non-empty list of steps", key="steps")
    steps: dict[str, StepSpec] = {}
    previous: str | None = None
    for position, raw in enumerate(raw_steps):
        spec = _parse_step(check, raw, position, previous)
        if spec.id in steps:
            raise check.fail("duplicate step id", step=spec.id, key="id")
        steps[spec.id] = spec
        previous = spec.id
    _check_graph(check, steps)
    steps = with_known_actions(check, steps)
    output = data.get("output")
    if output is not None and not isinstance(output, str):
        raise check.fail(f"must name a step (a string), not {kind_of(output)}", key="output")
    if output is not None and output not in steps:
        raise check.fail(f"names no step of this workflow: {output!r}", key="output")
    workflow = Workflow(
        name=name, path=path, module_path="", steps=steps, description=description,
        input_schema=data.get("input_schema"), output=output,
        schedule=parse_schedule(check, data["schedule"]) if "schedule" in data else None,
    )
    return workflow, module


def _parse_step(check: Checker, raw: object, position: int, previous: str | None) -> StepSpec:
    if not isinstance(raw, dict):
        raise check.fail(f"step #{position + 1} must be a mapping, not {kind_of(raw)}", key="steps")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID_PATTERN.fullmatch(step_id):
        raise check.fail(
            f"step #{position + 1} needs an id of letters, digits, '-' or '_' (got {shown(step_id)})",
            key="id",
        )
    for key in raw:
        if key not in STEP_KEYS:
            raise check.fail(f"unknown key (known keys: {', '.join(STEP_KEYS)})",
                             step=step_id, key=str(key))
    wait = raw.get("wait", False)
    if not isinstance(wait, bool):
        raise check.fail("must be true or false", step=step_id, key="wait")
    has_sleep = "sleep" in raw or "sleep_until" in raw
    if wait and has_sleep:
        raise check.fail("a step cannot both wait and sleep", step=step_id, key="wait")
    if "sleep" in raw and "sleep_until" in raw:
        raise check.fail("use either sleep or sleep_until, not both", step=step_id, key="sleep")
    child, input_from, foreach = _parse_nesting(check, raw, step_id, wait, has_sleep)
    kind = "wait" if wait else "sleep" if has_sleep else "workflow" if child else "code"
    for key in _NOT_FOR.get(kind, ()):
        if key in raw:
            raise check.fail("applies to wait steps only (wait: true)" if kind == "code" else
                         f"does not apply to a {kind} step (it has no code)",
                         step=step_id, key=key)
    handler = raw.get("handler", step_id.replace("-", "_")) if kind == "code" else None
    if handler is not None and (not isinstance(handler, str) or not handler.isidentifier()):
        raise check.fail(f"{shown(handler)} is not a Python function name", step=step_id, key="handler")
    needs = _parse_needs(check, raw, step_id, previous)
    when = _parse_when(check, raw.get("when"), step_id)
    timeout = _duration(check, raw, "timeout", step_id)
    on_timeout = raw.get("on_timeout")
    if on_timeout is not None and on_timeout not in ON_TIMEOUT:
        raise check.fail(f"must be one of {', '.join(ON_TIMEOUT)} (got {shown(on_timeout)})",
                         step=step_id, key="on_timeout")
    sleep_until = _parse_sleep_until(check, raw, step_id) if "sleep_until" in raw else None
    for key in SCHEMA_KEYS:
        if key in raw and not isinstance(raw[key], dict | bool):
            raise check.fail("must be a JSON Schema (a mapping)", step=step_id, key=key)
    approvals = parse_approvals(check, raw, step_id)
    label = raw.get("label")
    if label is not None and (not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label)):
        raise check.fail(f"{shown(label)} is not a valid label (1 to 100 letters, digits, or "
                         "'_.:@-', starting with a letter or digit)", step=step_id, key="label")
    return StepSpec(
        id=step_id, kind=kind, handler=handler, needs=needs, when=when,
        sleep=_duration(check, raw, "sleep", step_id), sleep_until=sleep_until,
        timeout=timeout, on_timeout=on_timeout,
        resume_schema=raw.get("resume_schema"), suspend_schema=raw.get("suspend_schema"),
        output_schema=raw.get("output_schema"), retry=_parse_retry(check, raw.get("retry"), step_id),
        workflow=child, input_from=input_from, foreach=foreach,
        actions=parse_actions(check, raw, step_id) if approvals is None
        else approval_actions(check, raw, step_id), label=label, approvals=approvals,
    )


def _parse_sleep_until(check: Checker, raw: dict[str, Any], step_id: str) -> datetime:
    """`sleep_until:` as an aware UTC datetime. YAML reads an unquoted 2030-01-01T09:00:00Z as
    a timestamp and 2030-01-01 as a date: a timestamp is taken as it is (one without an offset
    as UTC, YAML's rule), a date as its midnight UTC, as the same text in quotes is."""
    value = raw["sleep_until"]
    if isinstance(value, date) and not isinstance(value, datetime):
        return datetime.combine(value, time(), UTC)
    if not isinstance(value, str | datetime):
        raise check.fail(f"must be an ISO-8601 time, such as 2030-01-01T09:00:00Z, not "
                         f"{kind_of(value)}", step=step_id, key="sleep_until")
    try:
        return parse_iso(value)
    except ValueError as exc:
        raise check.fail(str(exc), step=step_id, key="sleep_until") from None


def _parse_nesting(
    check: Checker, raw: dict[str, Any], step_id: str, wait: bool, has_sleep: bool
) -> tuple[str | None, str | None, str | None]:
    """`workflow`, `input_from` and `foreach` of a step, checked on their own."""
    child = raw.get("workflow")
    if child is not None and (not isinstance(child, str) or not NAME_PATTERN.fullmatch(child)):
        raise check.fail(f"must name a workflow ([a-z0-9][a-z0-9_-]*), not {shown(child)}",
                         step=step_id, key="workflow")
    if child is not None and (wait or has_sleep):
        raise check.fail(f"a step cannot both {'wait' if wait else 'sleep'} and run a workflow",
                         step=step_id, key="workflow")
    refs: list[str | None] = []
    for key in ("input_from", "foreach"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not STEP_ID_PATTERN.fullmatch(value)):
            raise check.fail(f"must be a step id, not {shown(value)}", step=step_id, key=key)
        refs.append(value)
    input_from, foreach = refs
    if "input_from" in raw and child is None:
        raise check.fail("applies only to a step with 'workflow:' (the child's input)",
                         step=step_id, key="input_from")
    if "input_from" in raw and "foreach" in raw:
        raise check.fail("does not apply with 'foreach:': each child's input is its element",
                         step=step_id, key="input_from")
    if "foreach" in raw and (wait or has_sleep):
        raise check.fail(
            "applies to code and workflow steps only (a wait or sleep step has nothing to run "
            "per element; wrap the wait in a child workflow)", step=step_id, key="foreach")
    return child, input_from, foreach


def _duration(check: Checker, raw: dict[str, Any], key: str, step_id: str) -> timedelta | None:
    if key not in raw:
        return None
    try:
        return duration(raw[key])
    except ValueError as exc:
        raise check.fail(str(exc), step=step_id, key=key) from None


def _parse_needs(
    check: Checker, raw: dict[str, Any], step_id: str, previous: str | None
) -> tuple[str, ...]:
    if "needs" not in raw:
        return (previous,) if previous else ()
    needs = raw["needs"]
    if isinstance(needs, str):
        needs = [needs]
    if not isinstance(needs, list) or not all(isinstance(n, str) for n in needs):
        raise check.fail("must be a list of step ids", step=step_id, key="needs")
    if len(set(needs)) != len(needs):
        raise check.fail("lists a step twice", step=step_id, key="needs")
    return tuple(needs)


def _parse_when(check: Checker, when: object, step_id: str) -> dict[str, tuple[str, ...]]:
    if when is None:
        return {}
    if not isinstance(when, dict) or not when:
        raise check.fail("must map step ids to an action or a list of actions",
                         step=step_id, key="when")
    parsed: dict[str, tuple[str, ...]] = {}
    for target, actions in when.items():
        values = [actions] if isinstance(actions, str) else actions
        if not isinstance(values, list) or not values or not all(isinstance(a, str) for a in values):
            hint = ""
            if isinstance(actions, bool) or (isinstance(actions, list)
                                             and any(isinstance(a, bool) for a in actions)):
                hint = " (YAML reads yes/no/on/off/true/false as booleans: quote the action)"
            raise check.fail(f"actions for {shown(target)} must be a string or a list of strings"
                             f"{hint}", step=step_id, key="when")
        parsed[str(target)] = tuple(values)
    return parsed


def _parse_retry(check: Checker, retry: object, step_id: str) -> RetryPolicy | None:
    if retry is None:
        return None
    if not isinstance(retry, dict):
        raise check.fail("must be a mapping with max_attempts, delay, backoff, max_delay",
                         step=step_id, key="retry")
    for key in retry:
        if key not in RETRY_KEYS:
            raise check.fail(f"unknown key {shown(key)} (known: {', '.join(RETRY_KEYS)})",
                             step=step_id, key="retry")
    attempts = retry.get("max_attempts", 3)
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 1:
        raise check.fail("max_attempts must be a whole number >= 1", step=step_id, key="retry")
    backoff = retry.get("backoff", 2.0)
    if not isinstance(backoff, int | float) or isinstance(backoff, bool) or backoff < 1:
        raise check.fail("backoff must be a number >= 1", step=step_id, key="retry")
    policy = RetryPolicy(max_attempts=attempts, backoff=float(backoff))
    try:
        if "delay" in retry:
            policy = RetryPolicy(attempts, duration(retry["delay"]), float(backoff),
                                 policy.max_delay)
        if "max_delay" in retry:
            policy = RetryPolicy(attempts, policy.delay, float(backoff),
                                 duration(retry["max_delay"]))
    except ValueError as exc:
        raise check.fail(str(exc), step=step_id, key="retry") from None
    return policy


def _check_graph(check: Checker, steps: dict[str, StepSpec]) -> None:
    for spec in steps.values():
        for need in spec.needs:
            if need not in steps:
                raise check.fail(f"needs unknown step {need!r}", step=spec.id, key="needs")
            if need == spec.id:
                raise check.fail("a step cannot need itself", step=spec.id, key="needs")
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(step_id: str, path: list[str]) -> None:
        state[step_id] = 1
        for need in steps[step_id].needs:
            if state.get(need) == 1:
                cycle = " -> ".join([*path[path.index(need):], step_id, need]) \
                    if need in path else f"{step_id} -> {need}"
                raise check.fail(f"cycle in needs: {cycle}", step=step_id, key="needs")
            if need not in state:
                visit(need, [*path, step_id])
        state[step_id] = 2

    for step_id in steps:
        if step_id not in state:
            visit(step_id, [])
    for spec in steps.values():
        ancestors = _ancestors(steps, spec.id)
        for key in ("input_from", "foreach"):
            target = getattr(spec, key)
            if target is not None and target not in ancestors:
                raise check.fail(
                    f"refers to {target!r}, which is not a step this one needs (directly or not)",
                    step=spec.id, key=key,
                )
        for target in spec.when:
            if target not in ancestors:
                raise check.fail(
                    f"refers to {target!r}, which is not a step this one needs (directly or not)",
                    step=spec.id, key="when",
                )


def _ancestors(steps: dict[str, StepSpec], step_id: str) -> set[str]:
    found: set[str] = set()
    frontier = list(steps[step_id].needs)
    while frontier:
        current = frontier.pop()
        if current not in found:
            found.add(current)
            frontier.extend(steps[current].needs)
    return found
