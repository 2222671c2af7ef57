"""Shell completion of run ids, workflow names and step addresses (typer `autocompletion`).

Completion runs the command line with click's resilient parsing: the global options are parsed
but `_globals` is not called, so the state and workflows directories are read from the root
context here. Nothing is written, and any error completes nothing rather than printing one.
"""

import os
from typing import Any, NoReturn

import typer

from wfrun.errors import WfrunError

from ._settings import DEFAULT_STATE_DIR, DEFAULT_WORKFLOWS_DIR, Settings


def _settings(ctx: typer.Context) -> Settings:
    """The global options as `_globals` would have set them (from the root context)."""
    params = ctx.find_root().params
    state_dir = params.get("state_dir") or os.environ.get("WFRUN_STATE_DIR") or DEFAULT_STATE_DIR
    workflows_dir = params.get("workflows_dir") or os.environ.get("WFRUN_WORKFLOWS_DIR") \
        or DEFAULT_WORKFLOWS_DIR
    store = params.get("store") or os.environ.get("WFRUN_STORE") or None
    return Settings(str(state_dir), str(workflows_dir), explicit_state_dir=False, store=store)


def _store(ctx: typer.Context) -> Any:
    from wfrun.store import open_store

    return open_store(_settings(ctx).store_url())


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


SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")  # what typer has completion scripts for


class _SetupOption(typer.core.TyperOption):
    """`--install-completion [SHELL]` or `--show-completion [SHELL]`: a flag that takes the word
    after it as the shell's name (click has no option with an optional value)."""

    def handle_parse_result(self, ctx: Any, opts: Any, args: list[str]) -> Any:
        if opts.get(self.name) and args and not args[0].startswith("-"):
            ctx.meta["wfrun.shell"], args = args[0], args[1:]
        return super().handle_parse_result(ctx, opts, args)

    def get_help_record(self, ctx: Any) -> tuple[str, str] | None:
        record = super().get_help_record(ctx)
        return None if record is None else (f"{record[0]} [SHELL]", record[1])


def setup_options() -> list[Any]:
    """The two global options that set completion up (typer's own cannot be told the shell)."""
    from typer.completion import get_completion_inspect_parameters

    get_completion_inspect_parameters()  # registers typer's completion classes, as typer does
    return [
        _SetupOption(
            param_decls=["--install-completion"], is_flag=True, is_eager=True,
            expose_value=False, callback=set_up,
            help="Install completion for SHELL (bash, zsh, fish, powershell), by default the "
                 "shell running wfrun."),
        _SetupOption(
            param_decls=["--show-completion"], is_flag=True, is_eager=True, expose_value=False,
            callback=set_up,
            help="Print the completion script for SHELL (by default the shell running wfrun), "
                 "to install it yourself."),
    ]


def set_up(ctx: Any, param: Any, value: bool) -> None:
    """Install or show completion for the shell named, else for the one running wfrun; when
    none can be found (cron, setsid, a container), say which to name (exit 2)."""
    if not value or ctx.resilient_parsing:
        return
    option = "--install-completion" if param.name == "install_completion" else "--show-completion"
    shell = str(ctx.meta.get("wfrun.shell") or "").lower() or _detect_shell()
    if not shell:
        _refuse("cannot tell which shell runs wfrun (no shell among its parent processes, as "
                f"under cron or setsid); name it: wfrun {option} bash (or zsh, fish, powershell)")
    if shell not in SHELLS:
        _refuse(f"wfrun has no completion for the shell {shell!r}; name one of bash, zsh, fish, "
                f"powershell: wfrun {option} bash")
    from typer.completion import install_callback, show_callback

    (install_callback if option == "--install-completion" else show_callback)(ctx, param, shell)


def _detect_shell() -> str | None:
    import shellingham  # type: ignore[import-untyped]

    try:
        name, _ = shellingham.detect_shell()
    except shellingham.ShellDetectionFailure:
        return None
    return str(name).lower()


def _refuse(message: str) -> NoReturn:
    import sys

    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(2)
