"""Human output without rich (wfrun.cli._plain) is byte for byte what rich prints."""

from __future__ import annotations

import io
import sys
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.errors import MarkupError

from wfrun.cli import _plain, _render

STATUSES = ["completed", "running", "suspended", "waiting", "failed", "cancelled", "skipped",
            "pending", "odd"]
SAFE = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=12)
# Text that tests the edges: markup, backslashes, emoji codes, colons, wide and control characters.
_MARKS = ["[red]", "[/x]", ":smile:", "\\[b]"]
PRINTABLE = st.lists(st.sampled_from([*"ab [/]\\:smile-…é世😀", *_MARKS]), max_size=30).map("".join)
CONTROL = st.lists(st.sampled_from([*"ab [/]\\…\t\n\r\x1b\x7f\x85", *_MARKS]), max_size=30).map("".join)
MILD = st.lists(st.sampled_from([*"ab :-…é世😀]\\\"", "[1", "[ ", ":smile:"]), max_size=30).map("".join)
NASTY = PRINTABLE | MILD | MILD | CONTROL
ASCII = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=15)


def jsonish(text: Any) -> Any:
    return st.recursive(
        st.none() | st.booleans() | st.integers() | text,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
        max_leaves=6,
    )


@st.composite
def documents(draw: Any, text: Any = NASTY) -> dict[str, Any]:
    steps = {}
    for sid in draw(st.lists(SAFE, min_size=1, max_size=5, unique=True)):
        step: dict[str, Any] = {"status": draw(st.sampled_from(STATUSES)),
                                "runs": draw(st.integers(0, 12)), "output": draw(jsonish(text))}
        if draw(st.booleans()):
            step["iterations"] = [{"status": draw(st.sampled_from(STATUSES))}
                                  for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            step["child_run_id"] = draw(SAFE)
        steps[sid] = step
    doc: dict[str, Any] = {"run_id": draw(SAFE), "workflow": draw(SAFE),
                           "status": draw(st.sampled_from(STATUSES)), "steps": steps,
                           "output": draw(jsonish(text))}
    if draw(st.booleans()):
        doc["parent"] = {"step": draw(text), "index": draw(st.none() | st.integers(0, 9)),
                         "run_id": draw(SAFE)}
    if draw(st.booleans()):
        doc["error"] = {"step": draw(SAFE), "type": draw(text), "message": draw(text)}
    doc["suspended"] = [
        {"step": draw(text), "since": "2026-01-01T00:00:00.000Z", "deadline": draw(SAFE),
         "on_timeout": "cancel", "suspend_data": draw(jsonish(text)), "resume_command": draw(text),
         "resume_url": draw(text)}
        for _ in range(draw(st.integers(0, 2)))]
    doc["waiting"] = [
        {"step": draw(text), "kind": draw(st.sampled_from(["child", "sleep", "rerun"])),
         "child_run_id": draw(SAFE), "due_at": "2026-01-01T00:00:00Z", "runs": draw(st.integers(0, 5)),
         "resume_command": draw(st.none() | text)}
        for _ in range(draw(st.integers(0, 2)))]
    return doc


def _stdout() -> io.TextIOWrapper:
    return io.TextIOWrapper(io.BytesIO(), encoding="utf-8", newline="")


def _captured(out: io.TextIOWrapper) -> str:
    out.flush()
    return out.buffer.getvalue().decode()  # type: ignore[attr-defined]


def render_both(doc: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> tuple[str | None, str]:
    """(plain text or None if the plain path declined, rich's text)."""
    plain_out, rich_out = _stdout(), _stdout()
    with monkeypatch.context() as m:
        m.setattr(sys, "stdout", plain_out)
        taken = _plain.write_run(doc, True)
        m.setattr(sys, "stdout", rich_out)
        m.setattr(_plain, "write_run", lambda doc, with_steps: False)
        try:
            _render.run(doc)
        except MarkupError:  # data that reads as a closing tag (known, not the plain path's)
            assert not taken
            return None, ""
    return (_captured(plain_out) if taken else None), _captured(rich_out)


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in (*_plain._RICH_ENV, "COLUMNS", "LINES"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(), width=st.integers(1, 160))
def test_plain_text_is_what_rich_prints(doc: dict[str, Any], width: int,
                                         clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COLUMNS", str(width))
    plain, rich = render_both(doc, clean_env)
    if plain is not None:
        assert plain == rich


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(text=ASCII), width=st.integers(60, 300))
def test_ascii_text_with_brackets_and_backslashes(doc: dict[str, Any], width: int,
                                                  clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COLUMNS", str(width))
    plain, rich = render_both(doc, clean_env)
    if plain is not None:  # about half of these documents take the plain path
        assert plain == rich


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=documents(text=SAFE), width=st.integers(130, 200))
def test_ordinary_documents_take_the_plain_path(doc: dict[str, Any], width: int,
                                                clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("COLUMNS", str(width))
    plain, rich = render_both(doc, clean_env)
    assert plain == rich


def test_a_plain_document_takes_the_plain_path(clean_env: pytest.MonkeyPatch) -> None:
    doc = {"run_id": "r1", "workflow": "approve", "status": "suspended", "output": None,
           "steps": {"ask": {"status": "suspended", "runs": 1, "output": None},
                     "after": {"status": "pending", "runs": 0, "output": "x" * 50}},
           "suspended": [{"step": "ask", "since": "2026-01-01T00:00:00.000Z",
                          "deadline": "2026-01-31T00:00:00.000Z", "on_timeout": "cancel",
                          "resume_command": "wfrun resume r1 --step ask --data '{}'",
                          "resume_url": "http://127.0.0.1:8787/runs/r1/steps/ask/resume?token=t"}],
           "waiting": []}
    plain, rich = render_both(doc, clean_env)  # no COLUMNS: the default width
    assert plain is not None
    assert plain == rich
    assert "⏸ ask waits for data since 2026-01-01T00:00:00.000Z" in plain


@pytest.mark.parametrize("env", [{"FORCE_COLOR": "1"}, {"TTY_COMPATIBLE": "1"}])
def test_rich_prints_when_it_might_colour(
        env: dict[str, str], clean_env: pytest.MonkeyPatch) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    clean_env.setattr(sys, "stdout", _stdout())
    assert not _plain.plain_stdout()


def test_emoji_codes_in_data_are_shown_as_written(clean_env: pytest.MonkeyPatch) -> None:
    doc = {"run_id": "r1", "workflow": "w", "status": "completed", "output": ":smile:",
           "steps": {"a": {"status": "completed", "runs": 1, "output": ":smile:"}}}
    plain, rich = render_both(doc, clean_env)
    assert plain == rich
    assert rich.count(":smile:") == 2


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(items=st.lists(NASTY | ASCII, max_size=5), width=st.integers(1, 160))
def test_lines_without_rich_are_what_rich_prints(items: list[str], width: int,
                                                 clean_env: pytest.MonkeyPatch) -> None:
    """`tick` and `doctor` print one line per run: 1,000 of them through rich took 0.2 s."""
    clean_env.setenv("COLUMNS", str(width))
    plain_out, rich_out = _stdout(), _stdout()
    with clean_env.context() as m:
        m.setattr(sys, "stdout", plain_out)
        taken = _plain.write_lines(items)
        m.setattr(sys, "stdout", rich_out)
        m.setattr(_plain, "write_lines", lambda items: False)
        _render.lines(items)
    if taken:
        assert _captured(plain_out) == _captured(rich_out)
    else:
        assert _captured(plain_out) == ""


def test_tick_lines_take_the_plain_path(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(sys, "stdout", _stdout())
    assert _plain.write_lines(["due00001  poll  timer -> completed"])
    assert _captured(sys.stdout) == "due00001  poll  timer -> completed\n"  # type: ignore[arg-type]


CELL = st.text(st.characters(min_codepoint=32, max_codepoint=126), min_size=1, max_size=20) | \
    st.sampled_from(STATUSES) | NASTY


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.lists(CELL, min_size=4, max_size=4), max_size=6),
       width=st.integers(1, 160))
def test_tables_without_rich_are_what_rich_prints(rows: list[list[str]], width: int,
                                                  clean_env: pytest.MonkeyPatch) -> None:
    """`list` and `prune` print a table: without rich when no terminal shows it (rich's import
    is a third of a cold `wfrun list`)."""
    clean_env.setenv("COLUMNS", str(width))
    columns = ["run", "workflow", "status", "updated"]
    plain_out, rich_out = _stdout(), _stdout()
    with clean_env.context() as m:
        m.setattr(sys, "stdout", plain_out)
        taken = _plain.write_table(columns, rows, "no runs")
        m.setattr(sys, "stdout", rich_out)
        m.setattr(_plain, "write_table", lambda columns, rows, empty: False)
        _render.table(columns, rows, "no runs")
    if taken:
        assert _captured(plain_out) == _captured(rich_out)
    else:
        assert _captured(plain_out) == ""


def test_a_list_of_runs_takes_the_plain_path(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setattr(sys, "stdout", _stdout())
    assert _plain.write_table(["run", "status"], [["r1", "completed"], ["run-22", "failed"]], "none")
    assert _captured(sys.stdout) == ("run     status\nr1      completed\n"  # type: ignore[arg-type]
                                     "run-22  failed\n")
