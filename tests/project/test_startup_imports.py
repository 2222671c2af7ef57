"""Start-up cost guards (SPEC §9): what `wfrun resume` and `wfrun start` must not import.

Not timed tests: they check the lazy imports that keep a cold command cheap (see
docs/architecture.md, "Start-up cost"), so a regression shows up as a failing test.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.main import get_command_name

import wfrun.cli
from wfrun.cli import COMMAND_MODULES, app_for, command_name

# Heavy modules no one-step resume or start of a schema-less workflow needs.
NOT_ON_THE_PATH = ("jsonschema", "rich", "asyncio", "concurrent.futures", "wfrun.http",
                   "http.server", "wfrun._templates",
                   "wfrun.cli._serve", "wfrun.cli._doctor", "wfrun.cli._ops", "wfrun.engine._rewind",
                   # the PostgreSQL driver, loaded only for a postgresql:// store
                   "psycopg", "psycopg_pool", "wfrun.store.postgres")

# What a plain resume of a workflow whose manifest is already cached does not import either:
# yaml (the parsed manifest comes from the store's cache) and the engine's modules for nested
# runs, foreach iterations and tick.
NOT_ON_A_CACHED_RESUME = ("yaml", "_yaml", "wfrun.engine._tree", "wfrun.engine._nested",
                          "wfrun.engine._address", "wfrun.engine._tick")

WRAPPER = """
import atexit, json, runpy, sys
out = sys.argv[1]
atexit.register(lambda: open(out, "w").write(json.dumps(sorted(sys.modules))))
sys.argv = ["wfrun", *sys.argv[2:]]
runpy.run_module("wfrun", run_name="__main__")
"""


@pytest.fixture
def approve(project):  # type: ignore[no-untyped-def]
    project.workflow("approve", """
        steps:
          - id: ask
            wait: true
          - id: after
            handler: done
    """, "def done(ctx):\n    return 1\n")
    project.workflow("one", "steps:\n  - id: only\n    handler: done\n",
                     "def done(ctx):\n    return 1\n")
    return project


def modules_of(project, tmp_path: Path, *args: str) -> tuple[list[str], str]:  # type: ignore[no-untyped-def]
    """The modules loaded by a real `wfrun ARGS` process, and what it printed."""
    record = tmp_path / "modules.json"
    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(record), *project.base_args(), *args],
                          capture_output=True, text=True, timeout=60, cwd=project.root, env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(record.read_text()), proc.stdout


def heavy(modules: list[str]) -> list[str]:
    return [m for m in modules if m.split(".")[0] in NOT_ON_THE_PATH or m in NOT_ON_THE_PATH
            or any(m.startswith(f"{h}.") for h in NOT_ON_THE_PATH)]


@pytest.mark.parametrize("as_json", [False, True])
def test_resume_imports_nothing_heavy(approve, tmp_path: Path, as_json: bool) -> None:  # type: ignore[no-untyped-def]
    run_id = approve.json("start", "approve")["run_id"]
    flags = ["--json"] if as_json else []
    modules, out = modules_of(approve, tmp_path, "resume", run_id, "--data", "{}", *flags)
    assert heavy(modules) == []
    assert [m for m in modules if m.split(".")[0] == "yaml" or m in NOT_ON_A_CACHED_RESUME] == []
    assert "wfrun.store.file" in modules  # it did the work
    assert ('"status": "completed"' if as_json else f"Run {run_id} (approve) is completed.") in out


def test_no_dataclass_is_created_on_the_way_to_a_resume(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`@dataclass` compiles ~3 methods per class at import (~0.5 ms each class): the classes
    every command loads are written by hand (docs/architecture.md, "Start-up cost")."""
    run_id = approve.json("start", "approve")["run_id"]
    modules, _ = modules_of(approve, tmp_path, "resume", run_id, "--data", "{}")
    ours = [m for m in modules if m.split(".")[0] == "wfrun"]
    assert "wfrun.engine.core" in ours and "wfrun.context" in ours
    dataclasses = [f"{name}.{value.__name__}" for name in ours
                   for value in vars(importlib.import_module(name)).values()
                   if isinstance(value, type) and value.__module__ == name
                   and "__dataclass_fields__" in vars(value)]
    assert dataclasses == []


def test_start_imports_nothing_heavy(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    modules, out = modules_of(approve, tmp_path, "start", "one")
    assert heavy(modules) == []
    assert "is completed." in out


@pytest.mark.parametrize(("schema", "imported"), [
    ("{type: object, required: [ok], properties: {ok: {type: boolean}, note: {type: string}}}",
     False),  # types and fields only: the suggested data passes it without a check
    ("{type: integer, minimum: 5}", True),  # the suggested data is checked: jsonschema
])
def test_showing_a_suggested_command_checks_its_data_only_when_needed(  # type: ignore[no-untyped-def]
        project, tmp_path: Path, schema: str, imported: bool) -> None:
    project.workflow("form", f"steps:\n  - id: gate\n    wait: true\n    resume_schema: {schema}\n")
    run_id = project.json("start", "form")["run_id"]
    for command in (["show", run_id], ["pending"]):
        modules, out = modules_of(project, tmp_path, *command)
        assert "--data" in out
        assert ("jsonschema" in modules) is imported, command


def test_a_terminal_gets_rich(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_id = approve.json("start", "approve")["run_id"]
    record = tmp_path / "modules.json"
    proc = subprocess.run([sys.executable, "-c", WRAPPER, str(record), *approve.base_args(),
                           "show", run_id], capture_output=True, text=True, timeout=60,
                          cwd=approve.root, env={**os.environ, "FORCE_COLOR": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "rich.console" in json.loads(record.read_text())  # colour wanted: rich prints it


def test_every_command_is_registered_by_the_module_named_for_it() -> None:
    app = wfrun.cli.app
    found = {info.name or get_command_name(info.callback.__name__):  # type: ignore[union-attr]
             info.callback.__module__.rsplit(".", 1)[1]  # type: ignore[union-attr]
             for info in app.registered_commands}
    assert found == COMMAND_MODULES


@pytest.mark.parametrize(("argv", "name"), [
    (["resume", "r1", "--data", "{}"], "resume"),
    (["--state-dir", "resume", "start", "x"], "start"),
    (["--state-dir=x", "--workflows-dir", "w", "list"], "list"),
    (["--help"], None),
    (["--state-dir"], None),
    ([], None),
])
def test_the_command_word_is_found_after_the_global_options(argv: list[str], name: str | None) -> None:
    assert command_name(argv) == name


def test_only_the_invoked_command_is_built(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("_") and name.endswith("_COMPLETE"):
            monkeypatch.delenv(name)
    one = app_for(["resume", "r1"])
    assert [info.callback.__name__ for info in one.registered_commands] == ["resume"]  # type: ignore[union-attr]
    assert len(wfrun.cli.app.registered_commands) == len(COMMAND_MODULES)  # the shared app: all
    assert len(app_for(["--help"]).registered_commands) == len(COMMAND_MODULES)
    assert len(app_for(["nope"]).registered_commands) == len(COMMAND_MODULES)
    monkeypatch.setenv("_WFRUN_COMPLETE", "complete_bash")
    assert len(app_for(["resume"]).registered_commands) == len(COMMAND_MODULES)


def test_no_command_has_a_string_annotation() -> None:
    """typer compiles and evaluates a string annotation each time it builds a command (twice per
    command): the command line's annotations are evaluated once, at import (cli/_app.py)."""
    names = {f"wfrun.cli.{m}" for m in COMMAND_MODULES.values()} | {"wfrun.cli._app", "wfrun.cli._complete"}
    stringly = [f"{name}.{value.__name__}" for name in sorted(names)
                for value in vars(importlib.import_module(name)).values()
                if inspect.isfunction(value) and value.__module__ == name
                and any(isinstance(a, str) for a in value.__annotations__.values())]
    assert stringly == []


def test_a_second_start_reads_the_cached_manifest(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first, _ = modules_of(approve, tmp_path, "start", "one")
    assert "yaml" in first  # a new manifest is parsed (and cached once the run is stored)
    second, out = modules_of(approve, tmp_path, "start", "one")
    assert "yaml" not in second
    assert "is completed." in out


def _cache_entries(project) -> list[Path]:  # type: ignore[no-untyped-def]
    return sorted((project.state / "cache").glob("manifest-*.json"))


@pytest.mark.parametrize("damage", ["torn", "tampered", "foreign"])
def test_a_damaged_cache_entry_is_ignored(approve, tmp_path: Path, damage: str) -> None:  # type: ignore[no-untyped-def]
    approve.json("start", "one")
    run_id = approve.json("start", "approve")["run_id"]
    [entry] = [e for e in _cache_entries(approve) if b'"ask"' in e.read_bytes()]
    [other] = [e for e in _cache_entries(approve) if e != entry]  # the entry of `one`
    raw = entry.read_bytes()
    entry.write_bytes({
        "torn": raw[: len(raw) // 2],
        # valid JSON naming a handler that does not exist: the checksum catches it
        "tampered": raw.replace(b'"handler": "done"', b'"handler": "gone"'),
        "foreign": other.read_bytes(),  # another manifest's entry under this digest
    }[damage])
    modules, out = modules_of(approve, tmp_path, "resume", run_id, "--data", "{}", "--json")
    assert "yaml" in modules  # the manifest was parsed again
    doc = json.loads(out)
    assert (doc["status"], doc["output"], doc["warnings"]) == ("completed", 1, [])
    assert entry.read_bytes() == raw  # and cached again


def test_an_edited_manifest_is_picked_up(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run_id = approve.json("start", "approve")["run_id"]
    before = _cache_entries(approve)
    approve.workflow("approve", """
        steps:
          - id: ask
            wait: true
          - id: after
            handler: other
    """, "def done(ctx):\n    return 1\n\ndef other(ctx):\n    return 2\n")
    modules, out = modules_of(approve, tmp_path, "resume", run_id, "--data", "{}", "--json")
    assert "yaml" in modules  # new bytes, new digest: parsed, not taken from the cache
    doc = json.loads(out)
    assert (doc["status"], doc["output"]) == ("completed", 2)
    assert len(_cache_entries(approve)) == len(before) + 1  # and cached under its new digest


def test_validate_caches_nothing_and_creates_no_state(approve) -> None:  # type: ignore[no-untyped-def]
    assert approve.run("validate").code == 0
    assert not approve.state.exists()  # no state directory just to cache a manifest
    approve.json("start", "one")
    before = approve.snapshots()
    assert approve.cli("validate").code == 0  # parses approve.yaml: nothing cached, no change
    assert approve.snapshots() == before


def test_a_manifest_json_cannot_hold_is_parsed_each_time(approve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = approve
    project.json("start", "one")
    assert len(_cache_entries(project)) == 1  # a manifest JSON can hold is cached
    project.workflow("dated", """
        description: YAML reads the date below as a date, which JSON has no type for
        input_schema: {type: object, examples: [2026-01-01]}
        steps:
          - id: ask
            wait: true
          - id: after
            handler: done
    """, "def done(ctx):\n    return 1\n")
    run_id = project.json("start", "dated")["run_id"]
    assert len(_cache_entries(project)) == 1  # this one is not
    modules, out = modules_of(project, tmp_path, "resume", run_id, "--data", "{}")
    assert "yaml" in modules
    assert f"Run {run_id} (dated) is completed." in out


def test_a_refused_command_caches_nothing(project) -> None:  # type: ignore[no-untyped-def]
    manifest = ("steps:\n  - id: ask\n    wait: true\n"
                "    resume_schema: {type: object, required: [ok]}\n"
                "  - id: after\n    handler: done\n")
    project.workflow("gate", manifest, "def done(ctx):\n    return 1\n")
    run_id = project.json("start", "gate")["run_id"]
    project.workflow("gate", "description: edited\n" + manifest)  # new bytes: not cached yet
    before = project.snapshots()
    out = project.cli("resume", run_id, "--data", '{"no": 1}')
    assert out.code != 0 and "resume data" in out.stderr
    assert project.snapshots() == before  # refused: not even a cache entry was written
    assert project.cli("resume", run_id, "--data", '{"ok": 1}').code == 0
    assert len(_cache_entries(project)) == 2  # accepted: the edited manifest is cached


def test_a_tick_of_a_cached_workflow_does_not_import_yaml(project, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project.workflow("nap", """
        steps:
          - id: rest
            sleep: 1h
          - id: after
            handler: done
    """, "def done(ctx):\n    return 1\n")
    run_id = project.json("start", "nap")["run_id"]
    modules, _ = modules_of(project, tmp_path, "tick", "--now", "2099-01-01T00:00:00Z")
    assert "yaml" not in modules and "wfrun.engine._tick" in modules
    assert project.json("show", run_id)["status"] == "completed"  # the tick did the work
