"""The `wfrun` command line (typer and rich live only in this package)."""

from __future__ import annotations

import copy
import importlib
import os
import sys
from typing import Any

import typer

from . import _app, _stdout

# The module that registers each command. `wfrun resume ...` imports and builds only its own
# command (typer builds every registered command on each call: ~15 ms for all of them);
# anything else (help, completion, an unknown name) registers them all.
COMMAND_MODULES = {
    "start": "_runs", "resume": "_runs", "cancel": "_runs", "show": "_runs", "list": "_runs",
    "pending": "_runs", "logs": "_logs", "tick": "_ops", "validate": "_ops", "workflows": "_ops",
    "schedules": "_schedules", "send": "_send",
    "retry": "_recover", "fork": "_recover", "serve": "_serve", "token": "_tokens", "init": "_init",
    "doctor": "_doctor", "prune": "_prune", "graph": "_graph", "state": "_state",
}
_GLOBAL_OPTIONS = ("--state-dir", "--workflows-dir", "--store")  # options before a command, with a value

# click's exception classes, reached through typer's public API (typer vendors click in some
# versions and depends on it in others): BadParameter -> UsageError -> ClickException.
UsageError: type[Exception] = typer.BadParameter.__bases__[0]
ClickException: type[Exception] = UsageError.__bases__[0]


def register_all() -> typer.Typer:
    """Import every command module (each registers its commands) and return the app."""
    for module in sorted(set(COMMAND_MODULES.values())):
        importlib.import_module(f"{__name__}.{module}")
    return _app.app


def __getattr__(name: str) -> Any:
    if name == "app":  # `from wfrun.cli import app`: the whole command line
        return register_all()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def command_name(argv: list[str]) -> str | None:
    """The command word of a command line (after the global options), or None."""
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in _GLOBAL_OPTIONS:
            i += 2
        elif arg.startswith(tuple(f"{option}=" for option in _GLOBAL_OPTIONS)):
            i += 1
        else:
            return None if arg.startswith("-") else arg
    return None


def app_for(argv: list[str]) -> typer.Typer:
    """The app with only the command `argv` runs, or with all of them when that is unclear."""
    name = command_name(argv)
    completing = any(k.startswith("_") and k.endswith("_COMPLETE") for k in os.environ)
    if name not in COMMAND_MODULES or completing:
        return register_all()
    importlib.import_module(f"{__name__}.{COMMAND_MODULES[name]}")
    one = copy.copy(_app.app)  # a shallow copy: the shared app keeps all its commands
    one.registered_commands = [
        info for info in _app.app.registered_commands
        if (info.name or typer.main.get_command_name(info.callback.__name__)) == name  # type: ignore[union-attr]
    ]
    return one


GLOBAL_OPTIONS = ("--store", "--state-dir", "--workflows-dir")  # the root command's


def main() -> None:
    """Entry point of the `wfrun` console script and `python -m wfrun`.

    Usage mistakes (a missing argument, an unknown option) are one `error:` line on stderr with
    exit 2, like every other wfrun error, instead of click's usage block.
    """
    try:
        code = app_for(sys.argv[1:])(standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `wfrun`: the help, as it is
            print(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "wfrun"
        option = getattr(exc, "option_name", None)
        if option in GLOBAL_OPTIONS and ctx is not None and ctx.parent is not None:
            # `wfrun start X --state-dir D`: the option of the root command, after a command
            print(f"error: {option} is a global option: give it before the command, as in "
                  f"'wfrun {option} VALUE {ctx.info_name} ...'", file=sys.stderr)
        else:
            print(f"error: {exc.format_message()} (see '{where} --help')",  # type: ignore[attr-defined]
                  file=sys.stderr)
        code = exc.exit_code  # type: ignore[attr-defined]
    except ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        code = 1
    try:
        sys.stdout.flush()  # here, not at interpreter exit, where a closed pipe is a traceback
    except BrokenPipeError:
        code = _stdout.reader_gone()
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
