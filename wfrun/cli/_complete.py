"""Shell completion of run ids, workflow names and step addresses (typer `autocompletion`).

Completion runs the command line with click's resilient parsing: the global options are parsed
but `_globals` is not called, so the state and workflows directories are read from the root
context here. Nothing is written, and any error completes nothing rather than printing one.
"""

from __future__ import annotations

import os
from typing import Any

import typer

from wfrun.errors import WfrunError

from ._app import DEFAULT_STATE_DIR, DEFAULT_WORKFLOWS_DIR, Settings


def _settings(ctx: typer.Context) -> Settings:
    """The global options as `_globals` would have set them (from the root context)."""
    params = ctx.find_root().params
    state_dir = params.get("state_dir") or os.environ.get("WFRUN_STATE_DIR") or DEFAULT_STATE_DIR
    workflows_dir = params.get("workflows_dir") or os.environ.get("WFRUN_WORKFLOWS_DIR") \
        or DEFAULT_WORKFLOWS_DIR
    return Settings(str(state_dir), str(workflows_dir), explicit_state_dir=False)


def _store(ctx: typer.Context) -> Any:
    from wfrun.store.file import FileStore

    return FileStore(_settings(ctx).state_dir)


def run_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """The stored runs whose id starts with what was typed."""
    try:
        return list(_store(ctx).run_ids(incomplete))
    except (WfrunError, OSError):
        return []


def workflow_names(ctx: typer.Context, incomplete: str) -> list[str]:
    """The workflows `wfrun start NAME` finds (file stems, or directory names), by prefix."""
    from wfrun.loader import discover

    names = []
    for path in discover(_settings(ctx).workflows_dir):
        name = os.path.basename(os.path.dirname(path)) if path.endswith(
            f"{os.sep}workflow.yaml") else os.path.splitext(os.path.basename(path))[0]
        if name.startswith(incomplete):
            names.append(name)
    return sorted(set(names))


def _run(ctx: typer.Context) -> Any:
    """The engine and the run named by the command's RUN_ID argument, or None."""
    # While an option's value is completed, click stops parsing at that option and leaves the
    # words it has not matched to parameters in `ctx.args`: the run id may be there.
    run_id = ctx.params.get("run_id") or next(
        (word for word in ctx.args if not word.startswith("-")), None)
    if not run_id:
        return None
    engine = _settings(ctx).engine()
    return engine, engine.get(str(run_id))


def waiting_steps(ctx: typer.Context, incomplete: str) -> list[str]:
    """For `resume --step`: the addresses of the run's steps that can take data now."""
    try:
        found = _run(ctx)
        if found is None:
            return []
        engine, result = found
        document = engine.document(result)
    except (WfrunError, OSError):
        return []
    addresses = [entry["step"] for entry in document.get("suspended", [])]
    addresses += [entry["step"] for entry in document.get("waiting", [])
                  if entry.get("kind") == "rerun"]
    return [a for a in dict.fromkeys(addresses) if a.startswith(incomplete)]


def step_ids(ctx: typer.Context, incomplete: str) -> list[str]:
    """For `retry --step` and `fork --from`: the run's steps, in manifest order."""
    try:
        found = _run(ctx)
    except (WfrunError, OSError):
        return []
    if found is None:
        return []
    return [sid for sid in found[1].run.steps if sid.startswith(incomplete)]
