"""HTML pages of `wfrun serve`: the approval form, the cancel confirmation and result pages.

Everything shown is escaped; pages load no external asset and are sent with a strict
Content-Security-Policy (only the page's own inline style, identified by a per-response nonce).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from wfrun.durations import parse_iso
from wfrun.engine import OpenLink
from wfrun.model import COMPLETED, Run

from ._forms import FIELD_PREFIX, JSON_FIELD, Field, fields_for, json_key

FORM_MARKER = "_wfrun_form"
ACTION_FIELD = "_wfrun_action"

_STYLE = """
*{box-sizing:border-box} html{-webkit-text-size-adjust:100%}
body{font-family:system-ui,sans-serif;max-width:44rem;margin:1.5rem auto;padding:0 1rem;
color:#222;line-height:1.45;overflow-wrap:anywhere}
h1{font-size:1.4rem} h2{font-size:1.1rem;margin:1.4rem 0 .5rem} h3{font-size:1rem;margin:.9rem 0 .3rem}
dl{display:grid;grid-template-columns:fit-content(40%) minmax(0,1fr);gap:.25rem 1rem;margin:.3rem 0}
dt{font-weight:600;color:#444} dd{margin:0;min-width:0}
dd dl{margin:0;padding-left:.7rem;border-left:2px solid #ddd}
.v{white-space:pre-wrap} .none{color:#777;font-style:italic}
ul.list,ol.list{margin:0;padding-left:1.2rem}
pre{background:#f4f4f4;padding:.7rem;overflow:auto;white-space:pre-wrap;word-break:break-all}
label{display:block;margin:.8rem 0 .2rem;font-weight:600} .req{color:#b00}
.help{color:#555;font-size:.9rem} input[type=text],input[type=number],select,textarea{width:100%;
max-width:100%;padding:.5rem;font-size:1rem} textarea{min-height:5rem;font-family:monospace}
.buttons{margin-top:1.2rem;display:flex;flex-wrap:wrap;gap:.8rem}
button{padding:.7rem 1.6rem;font-size:1.05rem;border-radius:.4rem;border:1px solid #888;
background:#f4f4f4;cursor:pointer;min-width:7rem}
button#action-approved{background:#1a7f37;border-color:#1a7f37;color:#fff}
button#action-rejected{background:#b42318;border-color:#b42318;color:#fff}
.errors{border:1px solid #b00;background:#fff0f0;padding:.5rem 1rem}
.description{font-size:1.05rem}
@media (max-width:30rem){dl{display:block} dt{margin-top:.4rem} dd{margin-left:.8rem}
.buttons button{flex:1 1 auto}}
"""
MAX_SHOWN = 4000  # characters of one JSON value shown on a page


def csp(nonce: str) -> str:
    """The Content-Security-Policy of a page whose only inline content is its nonce'd style."""
    return (f"default-src 'none'; style-src 'nonce-{nonce}'; form-action 'self'; "
            "base-uri 'none'; frame-ancestors 'none'")


def page(title: str, body: str) -> tuple[str, str]:
    """A complete HTML document and its CSP header value."""
    nonce = secrets.token_urlsafe(12)
    html = (
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        f"<title>{escape(title)} · wfrun</title><style nonce=\"{nonce}\">{_STYLE}</style>"
        f"</head><body><main>\n<h1>{escape(title)}</h1>\n{body}\n</main></body></html>\n"
    )
    return html, csp(nonce)


_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_UNITS = (("day", 86400), ("hour", 3600), ("minute", 60))
MAX_ITEMS = 50  # entries of one object or list shown on a page
MAX_DEPTH = 5  # nesting shown as fields; deeper values are shown as compact JSON


def _count(number: int, unit: str) -> str:
    return f"{number} {unit}" + ("" if number == 1 else "s")


def distance(delta: timedelta) -> str:
    """How far a time is from now, said as people do: `in 6 days`, `2 hours ago`,
    `in 1 day 5 hours` (two units while the first is one), `just now`."""
    seconds = delta.total_seconds()
    span = abs(seconds)
    if span < 60:
        return "in less than a minute" if seconds > 0 else "just now"
    text = ""
    for index, (unit, size) in enumerate(_UNITS):
        if span >= size:
            number = int(span // size)
            text = _count(number, unit)
            if number == 1 and index + 1 < len(_UNITS):
                rest_unit, rest_size = _UNITS[index + 1]
                rest = int(span % size // rest_size)
                if rest:
                    text += " " + _count(rest, rest_unit)
            break
    return f"in {text}" if seconds > 0 else f"{text} ago"


def readable_time(value: Any, now: datetime | None = None) -> str | None:
    """An ISO-8601 time as `in 6 days (9 Dec, 01:26 UTC)` or `2 hours ago (2 Dec, 02:10 UTC)`,
    relative to `now` (the server's clock; the year is added when it is not now's); text
    that is not a time as it is; None for no value."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = parse_iso(value)
    except ValueError:
        return value
    now = (now or datetime.now(UTC)).astimezone(UTC)
    year = f" {moment.year}" if moment.year != now.year else ""
    date = f"{moment.day} {_MONTHS[moment.month - 1]}{year}, {moment:%H:%M} UTC"
    return f"{distance(moment - now)} ({date})"


def _scalar_html(value: Any) -> str:
    if value is None:
        return '<span class="none">none</span>'
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, str):
        if not value:
            return '<span class="none">(empty)</span>'
        shown = value if len(value) <= MAX_SHOWN else value[:MAX_SHOWN] + "… (cut: see wfrun show)"
        return f'<span class="v">{escape(shown)}</span>'
    return escape(str(value))


def value_html(value: Any, depth: int = 0) -> str:
    """A JSON value as readable fields: an object as a definition list of its keys (nested
    ones indented), a list as a list, text escaped, true/false as yes/no; long values cut."""
    if isinstance(value, dict):
        if not value:
            return '<span class="none">(empty)</span>'
        if depth >= MAX_DEPTH:
            return _compact(value)
        items = list(value.items())
        rows = "".join(f"<dt>{escape(str(key))}</dt><dd>{value_html(item, depth + 1)}</dd>"
                       for key, item in items[:MAX_ITEMS])
        if len(items) > MAX_ITEMS:
            rows += (f'<dt>…</dt><dd class="none">{len(items) - MAX_ITEMS} more '
                     "(see wfrun show)</dd>")
        return f"<dl>{rows}</dl>"
    if isinstance(value, list):
        if not value:
            return '<span class="none">(none)</span>'
        if depth >= MAX_DEPTH:
            return _compact(value)
        tag = "ol" if any(isinstance(item, dict | list) for item in value) else "ul"
        rows = "".join(f"<li>{value_html(item, depth + 1)}</li>" for item in value[:MAX_ITEMS])
        if len(value) > MAX_ITEMS:
            rows += f'<li class="none">{len(value) - MAX_ITEMS} more (see wfrun show)</li>'
        return f'<{tag} class="list">{rows}</{tag}>'
    return _scalar_html(value)


def _compact(value: Any) -> str:
    shown = json.dumps(value, ensure_ascii=False)
    if len(shown) > MAX_SHOWN:
        shown = shown[:MAX_SHOWN] + "… (cut: see wfrun show)"
    return f'<code class="v">{escape(shown)}</code>'


def _fields_block(ident: str, value: Any) -> str:
    """A value shown as fields, in a block with an id (tests and styles find it)."""
    return f'<div class="fields" id="{escape(ident)}">{value_html(value)}</div>'


_AT_DEADLINE = {"cancel": "the run is cancelled", "fail": "the run fails",
                "resume": "the run goes on without an answer"}


def _facts(link: OpenLink, now: datetime | None) -> str:
    run, step, state = link.run, link.step, link.node
    pause = state.pause or {}
    label = pause.get("label") or getattr(state, "label", None)
    on_timeout = pause.get("on_timeout")
    rows = [("Workflow", run.workflow), ("Run", run.run_id), ("Step", step), ("Label", label),
            ("Waiting since", readable_time(pause.get("since"), now)),
            ("Deadline", readable_time(pause.get("due_at"), now)),
            ("At the deadline", _AT_DEADLINE.get(str(on_timeout), on_timeout))]
    items = "".join(f"<dt>{escape(k)}</dt><dd>{escape(str(v))}</dd>" for k, v in rows if v)
    return f'<dl id="facts">{items}</dl>'


_UNSET: Any = object()  # a field with no value yet (posted back, or a schema default)


def _field_html(spec: Field, value: Any) -> str:
    unset = value is _UNSET
    value = None if unset else value
    name = escape(FIELD_PREFIX + spec.name)
    ident = escape("f-" + spec.name)
    mark = ' <span class="req" title="required">*</span>' if spec.required else ""
    req = " required" if spec.required else ""
    label = f'<label for="{ident}">{escape(spec.label)}{mark}</label>'
    help_ = f'<div class="help">{escape(spec.description)}</div>' if spec.description else ""
    if spec.kind == "checkbox":
        checked = " checked" if value is True else ""
        return (f'<label for="{ident}"><input type="checkbox" id="{ident}" name="{name}" '
                f'value="true"{checked}> {escape(spec.label)}{mark}</label>{help_}')
    if spec.kind == "select":
        # Nothing is chosen for the person until they choose (no value yet): a required select
        # starts on a placeholder the browser will not submit, so a careless click cannot send
        # the first option (an "approve", say), nor a null one that happens to come first.
        blank = "(choose one)" if spec.required else "(none)"
        options = f'<option value=""{" selected" if unset else ""}>{blank}</option>'
        chosen = None if unset else json_key(value)  # 1 selects 1, not also true (1 == True)
        for index, (option, text) in enumerate(zip(spec.options, spec.option_labels(),
                                                   strict=True)):
            selected = " selected" if not unset and json_key(option) == chosen else ""
            options += f'<option value="{index}"{selected}>{escape(text)}</option>'
        return f'{label}<select id="{ident}" name="{name}"{req}>{options}</select>{help_}'
    if spec.kind == "json":
        text = "" if value is None else json.dumps(value)
        return (f'{label}<textarea id="{ident}" name="{name}"{req}>{escape(text)}</textarea>'
                f'<div class="help">JSON</div>{help_}')
    kind = "number" if spec.kind in ("integer", "number") else "text"
    step = ' step="1"' if spec.kind == "integer" else ' step="any"' if spec.kind == "number" else ""
    shown = "" if value is None else str(value)
    return (f'{label}<input type="{kind}" id="{ident}" name="{name}"{step} '
            f'value="{escape(shown)}"{req}>{help_}')


def _earlier(run: Run, step: str) -> str:
    """The input of the run and the outputs of the completed steps before `step` (a step of
    the manifest)."""
    parts = []
    if run.input is not None:
        parts.append("<h2>Input of the run</h2>" + _fields_block("run-input", run.input))
    outputs = []
    for name, state in run.steps.items():
        if name == step:
            break
        if state.status == COMPLETED and state.output is not None:
            outputs.append(f"<h3>{escape(name)}</h3>"
                           + _fields_block(f"output-{name}", state.output))
    if outputs:
        parts.append("<h2>Earlier steps</h2>" + "".join(outputs))
    return "".join(parts)


# The form's first submit button where the step has actions: disabled, so that pressing Enter
# in a field (HTML's implicit submission, which clicks the form's first submit button) does
# nothing, and only a click on an action's button decides (HTML: implicit submission with a
# disabled default button does nothing).
NO_IMPLICIT_SUBMIT = ('<input type="submit" id="no-implicit-submit" disabled hidden '
                      'aria-hidden="true" tabindex="-1">')


def _buttons(actions: list[str]) -> str:
    """One submit button per known action, or one Submit where the step has none."""
    if not actions:
        return '<button type="submit" id="submit">Submit</button>'
    return "".join(
        f'<button type="submit" id="{escape("action-" + name)}" name="{ACTION_FIELD}" '
        f'value="{escape(name)}">{escape(button_label(name))}</button>' for name in actions)


def button_label(action: str) -> str:
    """What an action's button says: `approved` -> Approve, `choose-a` -> Choose a."""
    known = {"approved": "Approve", "rejected": "Reject", "cancelled": "Cancel"}
    text = action.replace("-", " ").replace("_", " ").strip() or action
    return known.get(action, text[:1].upper() + text[1:])


def approval_page(
    link: OpenLink, token: str, schema: Any, actions: list[str],
    values: dict[str, Any] | None = None, errors: list[dict[str, str]] | None = None,
    description: str = "", now: datetime | None = None,
) -> tuple[str, str]:
    """The approval form of a paused step: what is asked (the workflow's description, the run's
    input, earlier outputs and suspend data as readable fields, times relative to `now`, the
    server's clock), fields from its resume_schema, one button per known action."""
    state = link.node
    parts = []
    if description:
        parts.append(f'<p class="description" id="description">{escape(description)}</p>')
    parts.append(_facts(link, now))
    if state.suspend_data is not None:
        parts.append("<h2>Details</h2>" + _fields_block("suspend-data", state.suspend_data))
    parts.append(_earlier(link.run, link.manifest_step))
    gate = (state.pause or {}).get("approvals")
    if link.approver is not None and isinstance(gate, dict):
        parts.append(_approvals(link.approver, gate, now))
        if any(d.get("by") == link.approver for d in gate.get("decisions", ())):
            return page(f"Approval requested: {link.step}", "\n".join(parts))  # decided once
    if errors:
        items = "".join(f"<li>{escape(e['message'])}</li>" for e in errors)
        parts.append(f'<div class="errors" id="errors"><p>Please correct:</p><ul>{items}</ul></div>')
    fields = fields_for(schema, actions)
    if fields is None:
        shown = "" if values is None else json.dumps(values, ensure_ascii=False)
        inputs = (f'<label for="f-json">Data (JSON, optional)</label>'
                  f'<textarea id="f-json" name="{JSON_FIELD}">{escape(shown)}</textarea>')
    else:
        values = values if isinstance(values, dict) else {}
        inputs = "\n".join(
            _field_html(f, values.get(f.name, _UNSET if f.default is None else f.default))
            for f in fields if f.kind != "action")
    action = escape(f"resume?token={token}")
    parts.append(
        f'<h2>Your answer</h2><form method="post" action="{action}" id="approval">'
        f'<input type="hidden" name="{FORM_MARKER}" value="approval">'
        f'{NO_IMPLICIT_SUBMIT if actions else ""}\n{inputs}\n'
        f'<div class="buttons">{_buttons(actions)}</div></form>'
    )
    return page(f"Approval requested: {link.step}", "\n".join(parts))


def _approvals(approver: str, gate: dict[str, Any], now: datetime | None) -> str:
    """Who decides through this link, how many approvals the step needs, and the decisions
    so far (N-of-M approvals)."""
    decisions = gate.get("decisions", [])
    mine = next((d for d in decisions if d.get("by") == approver), None)
    you = (f'<p id="approver">You decide as <b>{escape(approver)}</b>: '
           f'{escape(str(gate.get("required")))} of {len(gate.get("approvers", []))} approvers '
           f'({escape(", ".join(gate.get("approvers", [])))}) must approve.</p>')
    if mine is not None:
        you += (f'<p id="already">You already decided: {escape(str(mine.get("action")))} at '
                f'{escape(readable_time(mine.get("at"), now) or "")}. Each approver decides once.</p>')
    rows = "".join(
        f'<li>{escape(str(d.get("by")))}: {escape(str(d.get("action")))} at '
        f'{escape(readable_time(d.get("at"), now) or "")} (from {escape(str(d.get("source")))})</li>'
        for d in decisions) or "<li>none yet</li>"
    return f'{you}<h2>Decisions so far</h2><ul id="decisions">{rows}</ul>'


def cancel_page(link: OpenLink, token: str, now: datetime | None = None) -> tuple[str, str]:
    """Asks a person to confirm cancelling the run (a browser GET never cancels by itself);
    times are relative to `now`, the server's clock."""
    run = link.run
    action = escape(f"cancel?token={token}")
    body = (
        _facts(link, now)
        + f"<p>Cancelling stops run <b>{escape(run.run_id)}</b>: nothing after this step runs.</p>"
        + f'<form method="post" action="{action}" id="cancel">'
        + f'<input type="hidden" name="{FORM_MARKER}" value="cancel">'
        + '<label for="reason">Reason (optional)</label>'
        + '<input type="text" id="reason" name="reason">'
        + '<div class="buttons"><button type="submit" id="confirm">Cancel the run</button></div>'
        + "</form>"
    )
    return page(f"Cancel run {run.run_id}?", body)


def message_page(title: str, message: str, data: Any = None) -> tuple[str, str]:
    """A short result page: what happened, and the data that was sent, if any."""
    body = f'<p id="message">{escape(message)}</p>'
    if data is not None:
        body += "<h2>Submitted</h2>" + _fields_block("submitted", data)
    return page(title, body)
