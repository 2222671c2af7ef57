"""Workflow manifests: YAML -> a validated `Workflow`; every error names file, step and key."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from wfrun._specs import Approvals, RetryPolicy, Schedule, StepSpec, Workflow
from wfrun.durations import format_duration, parse_duration, parse_iso
from wfrun.errors import ManifestError

NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]*")
STEP_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
# a suspension's label (`label:`, `suspend(label=)`, `ask(label=)`, `resume --label`)
LABEL_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}")
MAX_ACTION = 100  # characters in an action's name (as `resume --action` takes)
ON_TIMEOUT = ("cancel", "resume", "fail")
DEFAULT_TIMEOUT = timedelta(hours=24)
TOP_KEYS = ("name", "description", "module", "input_schema", "output", "steps", "schedule")
SCHEDULE_KEYS = ("cron", "every", "timezone", "input", "overlap", "catchup")
OVERLAP = ("skip", "allow", "cancel_previous")
CATCHUP = ("latest", "all", "none")
CRON_NICKNAMES = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
STEP_KEYS = (
    "id", "handler", "needs", "when", "wait", "sleep", "sleep_until", "timeout", "on_timeout",
    "resume_schema", "suspend_schema", "output_schema", "retry", "workflow", "input_from",
    "foreach", "actions", "label", "approvals",
)
APPROVER_PATTERN = re.compile(r"[A-Za-z0-9_.@-]{1,100}")
APPROVAL_ACTIONS = ("approved", "rejected")  # the known actions of a step with `approvals:`
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


class _Checker:
    """Collects the context (file, step, key) that every manifest error message names."""

    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, message: str, step: str | None = None, key: str | None = None) -> ManifestError:
        where = self.path
        if step is not None:
            where += f": step '{step}'"
        if key is not None:
            where += f": key '{key}'"
        return ManifestError(f"{where}: {message}")


def parse_manifest(data: object, path: str, default_name: str) -> tuple[Workflow, str | None]:
    """Validate a loaded YAML document; return the workflow and its declared module (if any)."""
    check = _Checker(path)
    if not isinstance(data, dict):
        raise check.fail(f"the manifest must be a YAML mapping, not {_kind(data)}")
    for key in data:
        if key not in TOP_KEYS:
            raise check.fail(f"unknown key (known keys: {', '.join(TOP_KEYS)})", key=str(key))
    name = data.get("name", default_name)
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise check.fail(f"{name!r} is not a valid name (use [a-z0-9][a-z0-9_-]*)", key="name")
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
    steps = _with_known_actions(check, steps)
    output = data.get("output")
    if output is not None and output not in steps:
        raise check.fail(f"names no step of this workflow: {output!r}", key="output")
    workflow = Workflow(
        name=name, path=path, module_path="", steps=steps, description=description,
        input_schema=data.get("input_schema"), output=output,
        schedule=_parse_schedule(check, data["schedule"]) if "schedule" in data else None,
    )
    return workflow, module


def _parse_schedule(check: _Checker, raw: object) -> Schedule:
    """`schedule:` (SPEC §11), checked for shape here; the cron expression's fields, the time
    zone and the input against `input_schema` are checked with the code (`wfrun._firetimes`),
    so that reading a manifest imports no cron library."""
    example = "such as {cron: \"0 9 * * 1-5\", timezone: Europe/Berlin} or {every: 15m}"
    if not isinstance(raw, dict):
        raise check.fail(f"must be a mapping, {example}", key="schedule")
    for key in raw:
        if key not in SCHEDULE_KEYS:
            raise check.fail(f"unknown key {key!r} (known: {', '.join(SCHEDULE_KEYS)})",
                             key="schedule")
    if ("cron" in raw) == ("every" in raw):
        raise check.fail(f"needs either 'cron' or 'every' (not both), {example}", key="schedule")
    cron, every, every_text = raw.get("cron"), None, None
    if cron is not None:
        fields = cron.split() if isinstance(cron, str) else []
        if not (len(fields) == 5 or (len(fields) == 1 and fields[0].lower() in CRON_NICKNAMES)):
            raise check.fail(f"cron: {cron!r} is not a cron expression of 5 fields (minute hour "
                             "day-of-month month day-of-week, such as \"0 9 * * 1-5\")",
                             key="schedule")
        cron = " ".join(fields)
    else:
        try:
            every = parse_duration(raw["every"])
        except ValueError as exc:
            raise check.fail(f"every: {exc}", key="schedule") from None
        seconds = every.total_seconds()
        if seconds < 1 or seconds != int(seconds):
            raise check.fail(f"every: {raw['every']!r} must be a whole number of seconds, at "
                             "least 1s", key="schedule")
        every_text = format_duration(every)
        if "timezone" in raw:
            raise check.fail("timezone: applies to 'cron' only ('every' counts from "
                             "1970-01-01T00:00Z in any time zone); use cron for times of day",
                             key="schedule")
    timezone = raw.get("timezone", "UTC")
    if not isinstance(timezone, str) or not timezone.strip():
        raise check.fail("timezone: must be an IANA time zone name such as Europe/Berlin or UTC",
                         key="schedule")
    for key, allowed in (("overlap", OVERLAP), ("catchup", CATCHUP)):
        value = raw.get(key, allowed[0])
        if value not in allowed:
            hint = (" (YAML reads yes/no/on/off/true/false as booleans: quote it)"
                    if isinstance(value, bool) else "")
            raise check.fail(f"{key}: must be one of {', '.join(allowed)} (got {value!r}){hint}",
                             key="schedule")
    run_input = raw.get("input", {})
    if not _json_value(run_input):
        raise check.fail("input: must be JSON data (YAML dates and the like have no JSON type: "
                         "quote them)", key="schedule")
    return Schedule(cron=cron, every=every, every_text=every_text, timezone=timezone.strip(),
                    input=run_input, overlap=raw.get("overlap", "skip"),
                    catchup=raw.get("catchup", "latest"))


def _json_value(value: object) -> bool:
    """True if `value` comes back from JSON unchanged (a run's input must)."""
    import json

    try:
        return bool(json.loads(json.dumps(value)) == value)
    except (TypeError, ValueError, RecursionError):
        return False


def _kind(value: object) -> str:
    return "nothing" if value is None else f"a {type(value).__name__}"


def _parse_step(check: _Checker, raw: object, position: int, previous: str | None) -> StepSpec:
    if not isinstance(raw, dict):
        raise check.fail(f"step #{position + 1} must be a mapping, not {_kind(raw)}", key="steps")
    step_id = raw.get("id")
    if not isinstance(step_id, str) or not STEP_ID_PATTERN.fullmatch(step_id):
        raise check.fail(
            f"step #{position + 1} needs an id of letters, digits, '-' or '_' (got {step_id!r})",
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
        raise check.fail(f"{handler!r} is not a Python function name", step=step_id, key="handler")
    needs = _parse_needs(check, raw, step_id, previous)
    when = _parse_when(check, raw.get("when"), step_id)
    timeout = _duration(check, raw, "timeout", step_id)
    on_timeout = raw.get("on_timeout")
    if on_timeout is not None and on_timeout not in ON_TIMEOUT:
        raise check.fail(f"must be one of {', '.join(ON_TIMEOUT)} (got {on_timeout!r})",
                         step=step_id, key="on_timeout")
    sleep_until = None
    if "sleep_until" in raw:
        try:
            sleep_until = parse_iso(raw["sleep_until"])
        except ValueError as exc:
            raise check.fail(str(exc), step=step_id, key="sleep_until") from None
    for key in SCHEMA_KEYS:
        if key in raw and not isinstance(raw[key], dict | bool):
            raise check.fail("must be a JSON Schema (a mapping)", step=step_id, key=key)
    approvals = _parse_approvals(check, raw, step_id)
    label = raw.get("label")
    if label is not None and (not isinstance(label, str) or not LABEL_PATTERN.fullmatch(label)):
        raise check.fail(f"{label!r} is not a valid label (1 to 100 letters, digits, or "
                         "'_.:@-', starting with a letter or digit)", step=step_id, key="label")
    return StepSpec(
        id=step_id, kind=kind, handler=handler, needs=needs, when=when,
        sleep=_duration(check, raw, "sleep", step_id), sleep_until=sleep_until,
        timeout=timeout, on_timeout=on_timeout,
        resume_schema=raw.get("resume_schema"), suspend_schema=raw.get("suspend_schema"),
        output_schema=raw.get("output_schema"), retry=_parse_retry(check, raw.get("retry"), step_id),
        workflow=child, input_from=input_from, foreach=foreach,
        actions=_parse_actions(check, raw, step_id) if approvals is None
        else _approval_actions(check, raw, step_id), label=label, approvals=approvals,
    )


def _parse_approvals(check: _Checker, raw: dict[str, Any], step_id: str) -> Approvals | None:
    """`approvals: {required: N, approvers: [names]}` of a wait step (N of M decide)."""
    if "approvals" not in raw:
        return None
    value = raw["approvals"]
    if not isinstance(value, dict):
        raise check.fail("must be a mapping such as {required: 2, approvers: [alice, bob, "
                         "carol]}", step=step_id, key="approvals")
    unknown = [str(k) for k in value if k not in ("required", "approvers")]
    if unknown:
        raise check.fail(f"has the unknown key {unknown[0]!r} (known keys: required, "
                         "approvers)", step=step_id, key="approvals")
    approvers = value.get("approvers")
    if not isinstance(approvers, list) or not approvers:
        raise check.fail("needs 'approvers', a list of names such as [alice, bob, carol]",
                         step=step_id, key="approvals")
    for name in approvers:
        if not isinstance(name, str) or not APPROVER_PATTERN.fullmatch(name):
            raise check.fail(f"the approver {name!r} is not a name (1 to 100 letters, digits "
                             "or '_.@-')", step=step_id, key="approvals")
        if approvers.count(name) > 1:
            raise check.fail(f"lists the approver {name!r} twice", step=step_id,
                             key="approvals")
    required = value.get("required")
    if isinstance(required, bool) or not isinstance(required, int) \
            or not 1 <= required <= len(approvers):
        raise check.fail(f"'required' must be a whole number from 1 to {len(approvers)} (the "
                         f"number of approvers), not {required!r}", step=step_id,
                         key="approvals")
    return Approvals(required, tuple(approvers))


def _approval_actions(check: _Checker, raw: dict[str, Any], step_id: str) -> tuple[str, ...]:
    """The actions of a step with `approvals:`: approved and rejected (an `actions:` list may
    only repeat them)."""
    declared = _parse_actions(check, raw, step_id)
    if declared is not None and set(declared) != set(APPROVAL_ACTIONS):
        raise check.fail("a step with approvals: takes the actions approved and rejected; "
                         "leave out actions:", step=step_id, key="actions")
    return APPROVAL_ACTIONS


def _parse_actions(check: _Checker, raw: dict[str, Any], step_id: str) -> tuple[str, ...] | None:
    """`actions:`: the actions the step takes, as a list of distinct names."""
    if "actions" not in raw:
        return None
    actions = raw["actions"]
    if not isinstance(actions, list) or not all(isinstance(a, str) for a in actions):
        hint = ""
        if isinstance(actions, bool) or (isinstance(actions, list)
                                         and any(isinstance(a, bool) for a in actions)):
            hint = " (YAML reads yes/no/on/off/true/false as booleans: quote the action)"
        raise check.fail(f"must be a list of action names, such as [approved, rejected]{hint}",
                         step=step_id, key="actions")
    if not actions:
        raise check.fail("must name at least one action (leave the key out for a step that "
                         "takes none)", step=step_id, key="actions")
    for action in actions:
        if not 0 < len(action) <= MAX_ACTION or not action.isprintable():
            raise check.fail(f"{action!r} is not an action name (1 to {MAX_ACTION} printable "
                             "characters)", step=step_id, key="actions")
        if actions.count(action) > 1:
            raise check.fail(f"lists the action {action!r} twice", step=step_id, key="actions")
    return tuple(actions)


def _with_known_actions(check: _Checker, steps: dict[str, StepSpec]) -> dict[str, StepSpec]:
    """Each step with its known actions: its `actions:` if declared, else every action a
    `when:` of another step names for it (manifest order). A `when:` naming an action that
    its target's `actions:` does not list is an error, reported on the step with the `when:`."""
    named: dict[str, list[str]] = {sid: [] for sid in steps}
    for spec in steps.values():
        for target, actions in spec.when.items():
            declared = steps[target].actions
            for action in actions:
                if declared is not None and action not in declared \
                        and steps[target].approvals is not None:
                    raise check.fail(
                        f"names the action {action!r} for step {target!r}, which has approvals: "
                        "and so takes the actions approved and rejected only; fix the name",
                        step=spec.id, key="when")
                if declared is not None and action not in declared:
                    raise check.fail(
                        f"names the action {action!r} for step {target!r}, whose 'actions:' "
                        f"are {', '.join(declared)}; fix the name or add it to that list",
                        step=spec.id, key="when")
                if action not in named[target]:
                    named[target].append(action)
    return {sid: _with_actions(spec, tuple(named[sid]))
            if spec.actions is None and named[sid] else spec for sid, spec in steps.items()}


def _with_actions(spec: StepSpec, known_actions: tuple[str, ...]) -> StepSpec:
    values = {name: getattr(spec, name) for name in StepSpec.__slots__}
    values["known_actions"] = known_actions
    return StepSpec(**values)


def _parse_nesting(
    check: _Checker, raw: dict[str, Any], step_id: str, wait: bool, has_sleep: bool
) -> tuple[str | None, str | None, str | None]:
    """`workflow`, `input_from` and `foreach` of a step, checked on their own."""
    child = raw.get("workflow")
    if child is not None and (not isinstance(child, str) or not NAME_PATTERN.fullmatch(child)):
        raise check.fail(f"must name a workflow ([a-z0-9][a-z0-9_-]*), not {child!r}",
                         step=step_id, key="workflow")
    if child is not None and (wait or has_sleep):
        raise check.fail(f"a step cannot both {'wait' if wait else 'sleep'} and run a workflow",
                         step=step_id, key="workflow")
    refs: list[str | None] = []
    for key in ("input_from", "foreach"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not STEP_ID_PATTERN.fullmatch(value)):
            raise check.fail(f"must be a step id, not {value!r}", step=step_id, key=key)
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


def _duration(check: _Checker, raw: dict[str, Any], key: str, step_id: str) -> timedelta | None:
    if key not in raw:
        return None
    try:
        return parse_duration(raw[key])
    except ValueError as exc:
        raise check.fail(str(exc), step=step_id, key=key) from None


def _parse_needs(
    check: _Checker, raw: dict[str, Any], step_id: str, previous: str | None
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


def _parse_when(check: _Checker, when: object, step_id: str) -> dict[str, tuple[str, ...]]:
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
            raise check.fail(f"actions for {target!r} must be a string or a list of strings"
                             f"{hint}", step=step_id, key="when")
        parsed[str(target)] = tuple(values)
    return parsed


def _parse_retry(check: _Checker, retry: object, step_id: str) -> RetryPolicy | None:
    if retry is None:
        return None
    if not isinstance(retry, dict):
        raise check.fail("must be a mapping with max_attempts, delay, backoff, max_delay",
                         step=step_id, key="retry")
    for key in retry:
        if key not in RETRY_KEYS:
            raise check.fail(f"unknown key {key!r} (known: {', '.join(RETRY_KEYS)})",
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
            policy = RetryPolicy(attempts, parse_duration(retry["delay"]), float(backoff),
                                 policy.max_delay)
        if "max_delay" in retry:
            policy = RetryPolicy(attempts, policy.delay, float(backoff),
                                 parse_duration(retry["max_delay"]))
    except ValueError as exc:
        raise check.fail(str(exc), step=step_id, key="retry") from None
    return policy


def _check_graph(check: _Checker, steps: dict[str, StepSpec]) -> None:
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
