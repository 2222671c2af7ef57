"""Issue 2, SPEC §4-§6 through the command line: each command's --json document, global options
and their environment variables, payload sources and the size cap, exit codes of every error
path, idempotent start, colour rules, code changes, and the file store's own files (format,
modes, an append-only history).
"""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import Outcome, Project, file_store
from typer.testing import CliRunner

from wfrun.cli import app

FLOW = """
description: one of each pause
input_schema: {type: object}
steps:
  - id: first
  - id: gate
    wait: true
    timeout: 1h
    resume_schema: {type: object, properties: {ok: {type: boolean}}}
  - id: poll
    needs: []
  - id: last
    needs: [gate]
"""
FLOW_PY = """
def first(ctx):
    return {"input": ctx.input}

def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("5m", max_retries=3)
    return ctx.run.runs

def last(ctx):
    return {"gate": ctx.steps["gate"].resume_data}
"""
RUN_KEYS = {"run_id", "workflow", "status", "input", "output", "error", "created_at",
            "updated_at", "suspended", "waiting", "steps", "warnings"}
STEP_KEYS = {"status", "runs", "output", "action", "resume_data", "suspend_data", "error",
             "started_at", "finished_at"}
SUSPENDED_KEYS = {"step", "path", "since", "deadline", "on_timeout", "suspend_data", "label",
                  "resume_command", "resume_url", "cancel_url"}
ISO_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z")


def refused(out: Outcome, code: int) -> str:
    """Assert the exit code and that stderr is one `error:` line with no traceback."""
    assert out.code == code, (out.code, out.stdout, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), out.stderr
    assert out.stdout == ""
    return lines[0]


@pytest.fixture
def flow(project: Project) -> Project:
    project.workflow("flow", FLOW, FLOW_PY)
    return project


def check_run_document(doc: dict[str, Any], history: bool = False) -> None:
    assert set(doc) == RUN_KEYS | ({"history"} if history else set())
    for key in ("created_at", "updated_at"):
        assert ISO_Z.fullmatch(doc[key]), doc[key]
    for step in doc["steps"].values():
        assert set(step) == STEP_KEYS
    for entry in doc["suspended"]:
        assert set(entry) == SUSPENDED_KEYS
        assert ISO_Z.fullmatch(entry["since"]) and ISO_Z.fullmatch(entry["deadline"])
    for entry in doc["waiting"]:
        base = {"step", "kind", "due_at", "runs"}
        rerun = {"max_retries", "resume_url", "cancel_url", "resume_command"}
        assert set(entry) == (base | rerun if entry["kind"] == "rerun" else base)
        assert ISO_Z.fullmatch(entry["due_at"])
    if history:
        for item in doc["history"]:
            assert {"at", "type", "step"} <= set(item) and ISO_Z.fullmatch(item["at"])


# -- --json documents ---------------------------------------------------------------------------


def test_start_resume_cancel_and_show_print_the_run_document(flow: Project) -> None:
    started = flow.json("start", "flow", "--input", '{"who": "ann"}')
    check_run_document(started)
    assert started["status"] == "suspended" and started["input"] == {"who": "ann"}
    assert [s["step"] for s in started["suspended"]] == ["gate"]
    assert [(w["step"], w["kind"], w["max_retries"]) for w in started["waiting"]] == [
        ("poll", "rerun", 3)]
    assert started["error"] is None and started["output"] is None and started["warnings"] == []
    run_id = started["run_id"]
    assert re.fullmatch(r"[0-9a-z]{26}", run_id)  # generated: time-sortable, file-safe
    shown = flow.json("show", run_id)
    check_run_document(shown, history=True)
    assert [e["type"] for e in shown["history"]][:2] == ["started", "step_started"]
    assert {k: v for k, v in shown.items() if k != "history"} == started
    resumed = flow.json("resume", run_id, "--step", "gate", "--data", '{"ok": true}')
    check_run_document(resumed)
    assert resumed["status"] == "waiting"  # the rerun timer is left
    assert resumed["steps"]["last"]["output"] == {"gate": {"ok": True}}
    cancelled = flow.json("cancel", run_id, "--reason", "enough")
    check_run_document(cancelled)
    assert cancelled["status"] == "cancelled" and cancelled["waiting"] == []
    assert cancelled["steps"]["poll"]["status"] == "cancelled"
    history = flow.json("show", run_id)["history"]
    assert history[-1]["type"] == "cancelled" and history[-1]["reason"] == "enough"


def test_list_filters_and_orders_newest_first(flow: Project) -> None:
    flow.workflow("other", "steps: [{id: only}]\n", "def only(ctx):\n    return 1\n")
    ids = []
    for name in ("flow", "other", "flow"):
        ids.append(flow.json("start", name)["run_id"])
        time.sleep(0.002)  # distinct creation milliseconds
    assert ids == sorted(ids)  # generated ids sort by creation time
    rows = flow.json("list")
    assert [r["run_id"] for r in rows] == ids[::-1]
    for row in rows:
        assert set(row) == {"run_id", "workflow", "status", "created_at", "updated_at",
                            "next_due"}
    by_id = {r["run_id"]: r for r in rows}
    assert by_id[ids[1]]["status"] == "completed" and by_id[ids[1]]["next_due"] is None
    shown = flow.json("show", ids[0])
    assert by_id[ids[0]]["next_due"] == min(shown["suspended"][0]["deadline"],
                                            shown["waiting"][0]["due_at"])
    assert [r["run_id"] for r in flow.json("list", "--workflow", "other")] == [ids[1]]
    assert [r["run_id"] for r in flow.json("list", "--status", "completed")] == [ids[1]]
    assert len(flow.json("list", "--status", "completed", "--status", "suspended")) == 3
    assert [r["run_id"] for r in flow.json("list", "--limit", "1")] == [ids[2]]
    refused(flow.run("list", "--status", "sleeping"), 2)
    human = flow.run("list")
    assert human.code == 0 and all(i in human.stdout for i in ids)


def test_pending_lists_every_open_suspension(flow: Project) -> None:
    flow.workflow("other", "steps: [{id: ask, wait: true, on_timeout: fail}]\n")
    a = flow.json("start", "flow")["run_id"]
    b = flow.json("start", "other")["run_id"]
    rows = flow.json("pending")
    assert [(r["run_id"], r["step"]) for r in rows] == [(a, "gate"), (b, "ask")]  # oldest first
    for row in rows:
        assert set(row) == {"run_id", "workflow", "step", "path", "since", "deadline",
                            "on_timeout", "suspend_data", "resume_schema", "label",
                            "resume_command"}
    assert rows[0]["resume_schema"] == {"type": "object",
                                        "properties": {"ok": {"type": "boolean"}}}
    assert rows[1]["on_timeout"] == "fail" and rows[1]["path"] == ["ask"]
    assert rows[0]["resume_command"].startswith("wfrun --state-dir ")
    assert f"resume {a} --step gate" in rows[0]["resume_command"]
    assert [r["run_id"] for r in flow.json("pending", "--workflow", "other")] == [b]
    flow.json("cancel", b)
    assert [r["run_id"] for r in flow.json("pending")] == [a]
    human = flow.run("pending")
    assert human.code == 0 and a in human.stdout
    assert "expects: {ok?: boolean}" in human.stdout  # the schema, as SPEC §5 lists it


def test_the_printed_resume_command_works(flow: Project) -> None:
    doc = flow.json("start", "flow")
    command = doc["suspended"][0]["resume_command"]
    out = subprocess.run(command.replace("wfrun", f"{sys.executable} -m wfrun", 1) + " --json",
                         shell=True, capture_output=True, text=True, cwd=flow.root,
                         env={**os.environ, "WFRUN_WORKFLOWS_DIR": str(flow.workflows)})
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["steps"]["gate"]["status"] == "completed"


def test_human_output_shows_how_to_continue_and_a_timeline(flow: Project) -> None:
    doc = flow.json("start", "flow")
    human = flow.run("show", doc["run_id"])
    assert human.code == 0
    assert doc["run_id"] in human.stdout and "suspended" in human.stdout
    assert doc["suspended"][0]["resume_command"] in human.stdout
    assert "history" in human.stdout
    for event in ("started", "step_started", "suspended", "rerun_scheduled"):
        assert event in human.stdout
    started = flow.run("start", "flow", "--run-id", "human-1")
    assert started.code == 0
    lines = started.stdout.splitlines()
    assert "human-1" in lines[0] and "suspended" in lines[0]
    assert any("resume human-1 --step gate" in line for line in lines)
    assert any(line.strip().endswith("cancel human-1") for line in lines)


# -- defaults and payloads ----------------------------------------------------------------------


def test_start_without_input_gives_an_empty_object_and_resume_without_data_gives_null(
    project: Project,
) -> None:
    project.workflow("w", """
        steps:
          - {id: gate, wait: true}
          - id: after
        """, "def after(ctx):\n    return {'input': ctx.input, 'gate': ctx.steps['gate'].output}\n")
    doc = project.json("start", "w")
    assert doc["input"] == {}
    done = project.json("resume", doc["run_id"])
    assert done["steps"]["gate"]["resume_data"] is None
    assert done["output"] == {"input": {}, "gate": None}
    project.workflow("flow", FLOW, FLOW_PY)
    doc = project.json("start", "flow")
    line = refused(project.run("resume", doc["run_id"], "--step", "gate"), 2)
    assert "the data must be an object, not null" in line  # null is checked like any data


def test_an_explicit_null_input_is_kept(project: Project) -> None:
    project.workflow("w", "steps: [{id: a}]\n", "def a(ctx):\n    return ctx.input\n")
    assert project.json("start", "w", "--input", "null")["input"] is None


def test_input_and_data_from_a_file_and_from_stdin(flow: Project, tmp_path: Path) -> None:
    payload = tmp_path / "input.json"
    payload.write_text('{"from": "file"}')
    assert flow.json("start", "flow", "--input", f"@{payload}")["input"] == {"from": "file"}
    doc = flow.json("start", "flow", "--input", "-", input='{"from": "stdin"}')
    assert doc["input"] == {"from": "stdin"}
    payload.write_text('{"ok": false}')
    resumed = flow.json("resume", doc["run_id"], "--step", "gate", "--data", f"@{payload}")
    assert resumed["steps"]["gate"]["resume_data"] == {"ok": False}
    other = flow.json("start", "flow")["run_id"]
    resumed = flow.json("resume", other, "--step", "gate", "--data", "-", input='{"ok": true}')
    assert resumed["steps"]["gate"]["resume_data"] == {"ok": True}
    line = refused(flow.run("start", "flow", "--input", f"@{tmp_path / 'missing.json'}"), 2)
    assert "missing.json" in line


def test_payloads_over_the_cap_are_refused(flow: Project, monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    before = flow.snapshots()
    monkeypatch.setenv("WFRUN_MAX_PAYLOAD", "100")
    big = json.dumps({"ok": True, "pad": "x" * 100})
    payload = tmp_path / "big.json"
    payload.write_text(big)
    for args in (["start", "flow", "--input", big], ["start", "flow", "--input", f"@{payload}"],
                 ["resume", run_id, "--step", "gate", "--data", big],
                 ["resume", run_id, "--step", "gate", "--data", f"@{payload}"]):
        line = refused(flow.run(*args), 2)
        assert "100 byte limit" in line and "WFRUN_MAX_PAYLOAD" in line
    line = refused(flow.run("resume", run_id, "--step", "gate", "--data", "-", input=big), 2)
    assert "stdin" in line
    assert flow.snapshots() == before
    small = flow.json("resume", run_id, "--step", "gate", "--data", '{"ok": true}')
    assert small["steps"]["gate"]["status"] == "completed"
    monkeypatch.delenv("WFRUN_MAX_PAYLOAD")
    one_mib = json.dumps({"pad": "x" * (1024 * 1024)})
    refused(flow.run("start", "flow", "--input", one_mib), 2)  # the default cap is 1 MiB


@pytest.mark.parametrize("bad", ["{", "{'single': 1}", "[1,]", "nul", '{"a": 1} extra'])
def test_malformed_json_is_refused_and_nothing_is_written(flow: Project, bad: str) -> None:
    line = refused(flow.run("start", "flow", "--input", bad), 2)
    assert "--input" in line and "JSON" in line
    assert not flow.state.exists()


# -- global options and environment -------------------------------------------------------------


def test_state_and_workflows_dirs_from_environment_variables(tmp_path: Path) -> None:
    workflows, state = tmp_path / "flows", tmp_path / "where" / "state"
    workflows.mkdir()
    (workflows / "w.yaml").write_text("steps: [{id: gate, wait: true}]\n")
    env = {"WFRUN_STATE_DIR": str(state), "WFRUN_WORKFLOWS_DIR": str(workflows)}
    runner = CliRunner()
    out = runner.invoke(app, ["start", "w", "--json"], env=env)
    assert out.exit_code == 0, out.output
    run_id = json.loads(out.stdout)["run_id"]
    assert file_store(state).load(run_id).status == "suspended"
    assert f"--state-dir {state}" in json.loads(out.stdout)["suspended"][0]["resume_command"]
    listed = runner.invoke(app, ["workflows", "--json"], env=env)
    assert [w["name"] for w in json.loads(listed.stdout)] == ["w"]
    # the option wins over the variable
    elsewhere = tmp_path / "elsewhere"
    shown = runner.invoke(app, ["--state-dir", str(elsewhere), "show", run_id], env=env)
    assert shown.exit_code == 4
    assert not elsewhere.exists() or not list(elsewhere.rglob(f"{run_id}*"))


def test_defaults_are_dot_wfstate_and_workflows_in_the_current_directory(
    project: Project,
) -> None:
    project.workflow("w", "steps: [{id: gate, wait: true}]\n")
    env = {k: v for k, v in os.environ.items()
           if k not in ("WFRUN_STATE_DIR", "WFRUN_WORKFLOWS_DIR")}
    out = subprocess.run([sys.executable, "-m", "wfrun", "start", "w", "--json"],
                         capture_output=True, text=True, cwd=project.root, env=env)
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert file_store(project.root / ".wfstate").load(doc["run_id"]).status == "suspended"
    assert doc["suspended"][0]["resume_command"].startswith(f"wfrun resume {doc['run_id']}")


# -- exit codes ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["../x", "a/b", "x" * 65, "has space", "", "r1;rm", "ü"])
@pytest.mark.parametrize("command", ["start", "show", "resume", "cancel"])
def test_invalid_run_ids_exit_2_before_touching_disk(project: Project, bad: str,
                                                     command: str) -> None:
    project.workflow("w", "steps: [{id: gate, wait: true}]\n")
    args = {"start": ["start", "w", "--run-id", bad], "show": ["show", "--", bad],
            "resume": ["resume", "--", bad], "cancel": ["cancel", "--", bad]}[command]
    line = refused(project.run(*args), 2)
    assert "invalid run id" in line
    assert not project.state.exists()
    assert not (project.root / "x").exists()


@pytest.mark.parametrize("args", [["show", "nope"], ["resume", "nope"], ["cancel", "nope"],
                                  ["start", "ghost"], ["validate", "ghost"]])
def test_unknown_runs_and_workflows_exit_4(flow: Project, args: list[str]) -> None:
    flow.json("start", "flow")
    before = flow.snapshots()
    line = refused(flow.run(*args), 4)
    assert args[1] in line
    assert flow.snapshots() == before


def test_unknown_step_exits_4_and_busy_steps_exit_3(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    before = flow.snapshots()
    line = refused(flow.run("resume", run_id, "--step", "nope"), 4)
    assert "nope" in line and "gate" in line  # names the steps there are
    line = refused(flow.run("resume", run_id, "--step", "first"), 3)
    assert "first" in line and "not suspended" in line
    assert flow.snapshots() == before


def test_step_is_required_when_several_steps_can_take_data(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]  # gate suspended, poll waits for a rerun
    before = flow.snapshots()
    line = refused(flow.run("resume", run_id, "--data", "{}"), 2)
    assert "gate" in line and "poll" in line and "--step" in line
    assert flow.snapshots() == before


def test_double_resume_exits_3_and_keeps_the_first_data(project: Project) -> None:
    project.workflow("w", "steps: [{id: gate, wait: true}]\n")
    run_id = project.json("start", "w")["run_id"]
    first = project.json("resume", run_id, "--data", '"first"')
    assert first["status"] == "completed"
    before = project.snapshots()
    line = refused(project.run("resume", run_id, "--data", '"second"'), 3)
    resumed_at = first["steps"]["gate"]["finished_at"]
    assert "already resumed" in line and resumed_at in line
    line = refused(project.run("resume", run_id, "--step", "gate", "--data", '"second"'), 3)
    assert "already resumed" in line
    assert project.snapshots() == before
    assert project.json("show", run_id)["steps"]["gate"]["resume_data"] == "first"


def test_a_cancelled_run_says_it_is_cancelled_whatever_was_resumed_before(
        project: Project) -> None:
    project.workflow("w", "steps: [{id: gate, wait: true}, {id: later, wait: true}]\n")
    run_id = project.json("start", "w")["run_id"]
    project.json("resume", run_id, "--step", "gate", "--data", '"first"')
    project.json("cancel", run_id)
    before = project.snapshots()
    for step in ("gate", "later"):
        line = refused(project.run("resume", run_id, "--step", step, "--data", "{}"), 3)
        assert line == f"error: run {run_id} is cancelled; it cannot be resumed"
    assert project.snapshots() == before


def test_finished_runs_cannot_be_resumed_or_cancelled(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    flow.json("cancel", run_id)
    before = flow.snapshots()
    assert "cancelled" in refused(flow.run("resume", run_id, "--step", "gate"), 3)
    assert "cancelled" in refused(flow.run("cancel", run_id), 3)
    assert flow.snapshots() == before
    flow.workflow("quick", "steps: [{id: only}]\n", "def only(ctx):\n    return 1\n")
    done = flow.json("start", "quick")["run_id"]
    assert "completed" in refused(flow.run("cancel", done), 3)
    assert "completed" in refused(flow.run("resume", done), 3)


def test_idempotent_start_with_run_id(flow: Project) -> None:
    first = flow.json("start", "flow", "--run-id", "order-42", "--input", '{"n": 1}')
    before = flow.snapshots()
    again = flow.run("start", "flow", "--run-id", "order-42", "--input", '{"n": 1}', "--json")
    assert again.code == 0
    doc = again.json()
    assert {k: v for k, v in doc.items() if k != "warnings"} == {
        k: v for k, v in first.items() if k != "warnings"}
    assert flow.snapshots() == before  # the step did not run again
    human = flow.run("start", "flow", "--run-id", "order-42", "--input", '{"n": 1}')
    assert human.code == 0 and "order-42" in human.stdout
    line = refused(flow.run("start", "flow", "--run-id", "order-42", "--input", '{"n": 2}'), 3)
    assert "order-42" in line and "input" in line
    # another JSON value is another input, though Python's == says true == 1 == 1.0
    for other in ('{"n": true}', '{"n": 1.0}'):
        assert refused(flow.run("start", "flow", "--run-id", "order-42", "--input", other), 3)
    assert flow.run("start", "flow", "--run-id", "order-42", "--input", '{ "n" : 1 }').code == 0
    flow.workflow("other", "steps: [{id: only}]\n", "def only(ctx):\n    return 1\n")
    line = refused(flow.run("start", "other", "--run-id", "order-42", "--input", '{"n": 1}'), 3)
    assert "workflow" in line
    # an input the other workflow would refuse: still a conflict with the run of that id
    flow.workflow("strict", "input_schema: {type: object, required: [user]}\n"
                  "steps: [{id: only}]\n", "def only(ctx):\n    return 1\n")
    line = refused(flow.run("start", "strict", "--run-id", "order-42", "--input", '{"n": 1}'), 3)
    assert "workflow" in line
    assert flow.snapshots() == before


def test_errors_are_one_line_without_traceback_in_a_real_process(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    cases = [(["start", "flow", "--input", "{bad"], 2), (["show", "../etc"], 2),
             (["show", "missing"], 4), (["resume", run_id, "--step", "gate", "--data",
                                         '{"ok": 1}'], 2),
             (["start", "ghost"], 4)]
    for args, code in cases:
        refused(flow.cli(*args), code)


# -- terminal output ----------------------------------------------------------------------------


COLOUR_PARAMS = re.compile(r"^(3[0-8]|4[0-8]|9[0-7]|10[0-7])$")


def _has_colour(text: str) -> bool:
    """True if some SGR escape sets a foreground or background colour (bold is not colour)."""
    for params in re.findall(r"\x1b\[([0-9;]*)m", text):
        if any(COLOUR_PARAMS.match(p) for p in params.split(";")):
            return True
    return False


def _in_a_terminal(project: Project, args: list[str], env: dict[str, str]) -> str:
    import pty

    main, child = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "wfrun", *project.base_args(), *args],
                            stdin=child, stdout=child, stderr=child, cwd=project.root, env=env)
    os.close(child)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=30)
    os.close(main)
    return b"".join(chunks).decode(errors="replace")


def test_colour_only_on_a_terminal_and_no_escape_codes_with_no_color(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    env = {k: v for k, v in os.environ.items()
           if k not in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")}
    env["TERM"] = "xterm-256color"
    assert _has_colour(_in_a_terminal(flow, ["show", run_id], env))
    assert _has_colour(_in_a_terminal(flow, ["show", "nope"], env))  # the error too
    plain = _in_a_terminal(flow, ["show", run_id], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in plain and run_id in plain  # no colour, and no bold either
    assert "\x1b[" not in _in_a_terminal(flow, ["show", "nope"], {**env, "NO_COLOR": "1"})
    listed = _in_a_terminal(flow, ["list"], {**env, "NO_COLOR": "1"})
    assert "\x1b[" not in listed and run_id in listed
    piped = subprocess.run([sys.executable, "-m", "wfrun", *flow.base_args(), "show", run_id],
                           capture_output=True, text=True, env=env, cwd=flow.root)
    assert piped.returncode == 0 and run_id in piped.stdout
    assert "\x1b[" not in piped.stdout + piped.stderr


def test_python_m_wfrun_and_the_console_script_print_help(project: Project) -> None:
    module = project.cli("--help")
    assert module.code == 0
    for command in ("start", "resume", "cancel", "list", "show", "pending", "validate",
                    "workflows"):
        assert command in module.stdout
    script = Path(sys.executable).with_name("wfrun")
    assert script.exists()
    out = subprocess.run([str(script), "start", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--input" in out.stdout and "--run-id" in out.stdout
    bare = project.cli()  # global options but no command: one line naming the mistake
    assert bare.code == 2 and "Missing command" in bare.stderr
    assert "Traceback" not in bare.stderr


# -- the file store's files (read as files by design) -------------------------------------------


def test_the_file_stores_snapshot_is_readable_json_with_a_schema_version_and_private_modes(
    flow: Project,
) -> None:
    """The file store's own files: a run's snapshot is JSON a person or jq can read, and every
    file and directory under the state directory is private."""
    run_id = flow.json("start", "flow", "--input", '{"who": "ann"}')["run_id"]
    snapshot = flow.state / "runs" / f"{run_id}.json"
    text = snapshot.read_text()
    assert "\n" in text  # human-readable, not one long line
    data = json.loads(text)
    assert data["schema_version"] == 1
    assert data["run"]["run_id"] == run_id and data["run"]["input"] == {"who": "ann"}
    jq = subprocess.run(["jq", "-r", ".run.status", str(snapshot)], capture_output=True,
                        text=True) if _has("jq") else None
    if jq is not None:
        assert jq.stdout.strip() == "suspended"
    assert stat.S_IMODE(flow.state.stat().st_mode) == 0o700
    for path in flow.state.rglob("*"):
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o700 if path.is_dir() else 0o600), (path, oct(mode))


def _has(program: str) -> bool:
    import shutil

    return shutil.which(program) is not None


def test_the_file_stores_history_file_is_appended_and_its_snapshot_does_not_grow_with_reruns(
    project: Project,
) -> None:
    """The file store's own files: a rerun appends to the run's history file (never rewrites
    it) at a bounded cost, and the snapshot file keeps a steady size however long the run."""
    project.workflow("poll", "steps: [{id: poll}]\n", """
        def poll(ctx):
            ctx.flow.rerun("1s", max_retries=1000)
            return ctx.run.runs
        """)
    run_id = project.json("start", "poll", "--run-id", "p")["run_id"]
    snapshot = project.state / "runs" / "p.json"
    history = next(p for p in (project.state / "runs").iterdir() if "history" in p.name)
    sizes, growth, previous = [], [], history.read_bytes()
    for minute in range(30):
        out = project.run("tick", "--now", f"2030-01-01T00:{minute:02d}:00Z")
        assert out.code == 0, out.stderr
        current = history.read_bytes()
        assert current.startswith(previous)  # appended, never rewritten
        growth.append(len(current) - len(previous))
        sizes.append(snapshot.stat().st_size)
        previous = current
    assert project.json("show", run_id)["steps"]["poll"]["runs"] == 31
    assert max(growth) - min(growth) <= 8 and min(growth) > 0  # a bounded cost per event
    # the snapshot does not grow with the run's length (each step keeps its last 8 pause nonces
    # for `wfrun serve`, so it reaches its steady size after 8 reruns)
    assert max(sizes[10:]) - min(sizes[10:]) <= 8


def test_code_changes_warn_and_a_removed_step_is_refused(project: Project) -> None:
    manifest = project.workflow("w", """
        steps:
          - {id: gate, wait: true}
          - id: after
        """, "def after(ctx):\n    return 'v1'\n")
    run_id = project.json("start", "w")["run_id"]
    module = project.workflows / "w.py"
    module.write_text("def after(ctx):\n    return 'v2'\n")
    out = project.run("resume", run_id, "--json")
    assert out.code == 0, out.stderr
    doc = out.json()
    assert doc["steps"]["after"]["output"] == "v2"  # continues with the current code
    assert len(doc["warnings"]) == 1 and "changed" in doc["warnings"][0]
    assert "module" in doc["warnings"][0]
    assert "changed" in out.stderr  # warnings also go to stderr
    second = project.json("start", "w")["run_id"]
    manifest.write_text("description: edited\nsteps:\n  - {id: gate, wait: true}\n  - id: after\n")
    human = project.run("resume", second)
    assert human.code == 0 and "warning" in human.stderr and "manifest" in human.stderr
    assert "warning" not in human.stdout
    third = project.json("start", "w")["run_id"]
    manifest.write_text("steps:\n  - id: after\n")
    before = project.snapshots()
    line = refused(project.run("resume", third, "--step", "gate"), 2)
    assert "gate" in line and "no longer exists" in line
    line = refused(project.run("resume", third), 2)
    assert project.snapshots() == before


def test_history_records_each_event_in_order(project: Project) -> None:
    project.workflow("h", """
        steps:
          - id: work
          - {id: gate, wait: true, actions: [never, other]}
          - id: skipped
            when: {gate: never}
        """, """
        def work(ctx):
            ctx.log.info("working")
            return 1

        def skipped(ctx):
            return 2
        """)
    run_id = project.json("start", "h")["run_id"]
    project.json("resume", run_id, "--action", "other")
    history = project.json("show", run_id)["history"]
    assert [(e["type"], e["step"]) for e in history] == [
        ("started", None), ("step_started", "work"), ("log", "work"),
        ("step_completed", "work"), ("suspended", "gate"), ("resumed", "gate"),
        ("step_completed", "gate"), ("step_skipped", "skipped"), ("completed", None)]
    assert [e["at"] for e in history] == sorted(e["at"] for e in history)
    assert history[5]["action"] == "other" and history[5]["source"] == "cli"


def test_cancel_drops_timers_so_tick_does_nothing_afterwards(flow: Project) -> None:
    doc = flow.json("start", "flow")
    flow.json("cancel", doc["run_id"])
    later = flow.run("tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert later.code == 0 and later.json() == {"advanced": [], "errors": []}
    final = flow.json("show", doc["run_id"])
    assert final["status"] == "cancelled" and final["steps"]["poll"]["runs"] == 1
    assert flow.json("list")[0]["next_due"] is None


def test_show_works_when_the_workflow_is_gone(flow: Project) -> None:
    run_id = flow.json("start", "flow")["run_id"]
    (flow.workflows / "flow.yaml").unlink()
    out = flow.run("show", run_id, "--json")
    assert out.code == 0
    doc = out.json()
    assert doc["status"] == "suspended"
    assert any("cannot be loaded" in w for w in doc["warnings"])
    human = flow.run("show", run_id)
    assert human.code == 0 and "warning" in human.stderr and run_id in human.stdout
    refused(flow.run("resume", run_id, "--step", "gate"), 4)


def test_warnings_quoting_brackets_are_printed_verbatim(project: Project) -> None:
    manifest = project.workflow("w", "steps: [{id: gate, wait: true}]\n")
    run_id = project.json("start", "w")["run_id"]
    manifest.write_text('steps: [{id: gate, wait: true, "[/oops]": 1, "[bold]": 2}]\n')
    out = project.run("show", run_id)  # the warning quotes the broken manifest's key
    assert out.code == 0, out.stderr
    assert "warning" in out.stderr and "[/oops]" in out.stderr


def test_text_that_looks_like_markup_is_shown_verbatim(project: Project) -> None:
    nasty = "[/x] [bold]b[/bold] [link=file:///etc]"
    project.workflow("m", f"""
        steps:
          - {{id: talk, actions: [{json.dumps(nasty)}]}}
          - {{id: gate, wait: true}}
          - id: boom
        """, f"""
        NASTY = {nasty!r}

        def talk(ctx):
            ctx.log.info(NASTY)
            ctx.flow.route(NASTY)
            return {{"text": NASTY}}

        def boom(ctx):
            raise ValueError(NASTY)
        """)
    started = project.run("start", "m", "--input", json.dumps({"n": nasty}))
    assert started.code == 0 and nasty in started.stdout
    run_id = project.json("list")[0]["run_id"]
    failed = project.run("resume", run_id, "--data", json.dumps(nasty))
    assert failed.code == 1 and nasty in failed.stdout
    shown = project.run("show", run_id)
    assert shown.code == 0 and shown.stdout.count(nasty) >= 3
    cancelled = project.run("cancel", run_id, "--reason", nasty)
    assert cancelled.code == 3 and nasty not in cancelled.stderr


@pytest.mark.parametrize("args", [["start"], ["tick", "--limit", "0"], ["frob"], ["list", "--bogus"]],
                         ids=["missing-argument", "bad-value", "unknown-command", "unknown-option"])
def test_usage_mistakes_are_one_error_line_with_exit_2(project: Project, args: list[str]) -> None:
    out = project.cli(*args)
    assert out.code == 2 and out.stdout == ""
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "--help" in lines[0], out.stderr


def test_plain_wfrun_prints_the_help_with_commands_in_a_runs_order(project: Project) -> None:
    out = subprocess.run([sys.executable, "-m", "wfrun"], capture_output=True, text=True,
                         cwd=project.root)
    assert out.returncode == 0, out.stderr
    commands = [line.split()[0] for line in out.stdout.split("Commands:")[1].splitlines()
                if line.strip()]
    assert commands[:4] == ["start", "resume", "send", "cancel"]


def test_history_stays_in_time_order_when_the_clock_moves_within_a_command(
    project: Project,
) -> None:
    """Each reading of the clock is a millisecond later (as on a real clock crossing a
    millisecond): the events one state change records are still in time order."""
    from datetime import timedelta

    from wfrun.clock import FakeClock
    from wfrun.engine import Engine

    class MovingClock(FakeClock):
        def now(self):  # type: ignore[no-untyped-def]
            moment = super().now()
            self.advance(timedelta(milliseconds=1))
            return moment

    project.workflow("h", """
        steps:
          - {id: gate, wait: true, actions: [never, other]}
          - id: skipped
            when: {gate: never}
        """, "def skipped(ctx):\n    return 2\n")
    engine = Engine(project.store(), MovingClock("2026-01-01T00:00:00Z"),
                    workflows_dir=str(project.workflows))
    run_id = engine.start("h").run.run_id
    engine.resume(run_id, None, action="other")
    times = [e["at"] for e in engine.store.read_history(run_id)]
    assert len(times) == 6 and times == sorted(times), times


@pytest.mark.parametrize("paused", [
    "{id: nap, sleep: 1h}",
    "{id: nap, wait: true, timeout: 1h, on_timeout: resume}",
])
def test_tick_refuses_the_due_timer_of_a_removed_step_and_changes_nothing(
        project: Project, paused: str) -> None:
    manifest = project.workflow("gone", f"steps:\n  - id: first\n  - {paused}\n  - id: last\n",
                                "def first(ctx):\n    return 1\n\ndef last(ctx):\n    return 2\n")
    assert project.json("start", "gone")["status"] in ("waiting", "suspended")
    manifest.write_text(manifest.read_text().replace("id: nap", "id: nap2"))
    def state() -> dict[str, bytes]:  # the parsed-manifest cache may grow; the runs may not
        return {k: v for k, v in project.snapshots().items() if not k.startswith("cache/")}
    before = state()
    out = project.run("tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert out.code == 1, (out.stdout, out.stderr)
    errors = out.json()["errors"]
    assert len(errors) == 1 and "nap" in str(errors[0]) and "no longer exists" in str(errors[0])
    assert state() == before


def test_store_and_a_state_dir_naming_another_store_are_refused_even_the_default_spelled_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("WFRUN_STATE_DIR", raising=False)
    monkeypatch.delenv("WFRUN_STORE", raising=False)

    def wfrun(*args: str, env: dict[str, str] | None = None) -> Outcome:
        result = CliRunner().invoke(app, list(args), env=env)
        return Outcome(result.exit_code, result.stdout, result.stderr)

    for given in (wfrun("--store", "file:other", "--state-dir", ".wfstate", "list"),
                  wfrun("list", env={"WFRUN_STORE": "file:other",
                                     "WFRUN_STATE_DIR": ".wfstate"})):
        line = refused(given, 2)
        assert "give only one" in line and "'file:other' and directory '.wfstate'" in line
    for same in (wfrun("--store", "file:./.wfstate", "--state-dir", ".wfstate", "list"),
                 wfrun("--store", f"file:{tmp_path / 'other'}", "--state-dir", "other", "list"),
                 wfrun("--store", "file:other", "list")):
        assert same.code == 0, same.stderr
    # an option on the command line wins over the other one's environment variable
    for over in (wfrun("--store", "file:other", "list", env={"WFRUN_STATE_DIR": ".wfstate"}),
                 wfrun("--state-dir", "other", "list", env={"WFRUN_STORE": "file:.wfstate"})):
        assert over.code == 0 and "other does not exist" in over.stderr, over.stderr
    assert not (tmp_path / ".wfstate").exists() and not (tmp_path / "other").exists()


def test_a_global_option_after_the_command_says_where_it_goes(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-m", "wfrun", "start", "x", "--state-dir", "d"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr == ("error: --state-dir is a global option: give it before the command, "
                          "as in 'wfrun --state-dir VALUE start ...'\n")


def test_version_and_doctor_without_a_state_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    version = CliRunner().invoke(app, ["--version"])
    assert version.exit_code == 0 and re.fullmatch(r"wfrun \d+\.\d+\.\d+\S*\n", version.stdout)
    checked = CliRunner().invoke(app, ["doctor"])
    assert checked.exit_code == 0 and "does not exist" in checked.stderr
    assert list(tmp_path.iterdir()) == []  # looked, made nothing
