"""The `wfrun` command line (typer and rich live only in this package)."""

from __future__ import annotations

import sys

import typer

from . import _doctor, _init, _logs, _ops, _recover, _runs, _serve  # noqa: F401  (they register the commands)
from ._app import app

# click's exception classes, reached through typer's public API (typer vendors click in some
# versions and depends on it in others): BadParameter -> UsageError -> ClickException.
UsageError: type[Exception] = typer.BadParameter.__bases__[0]
ClickException: type[Exception] = UsageError.__bases__[0]


def main() -> None:
    """Entry point of the `wfrun` console script and `python -m wfrun`.

    Usage mistakes (a missing argument, an unknown option) are one `error:` line on stderr with
    exit 2, like every other wfrun error, instead of click's usage block.
    """
    try:
        code = app(standalone_mode=False)
    except UsageError as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # plain `wfrun`: the help, as it is
            print(exc.format_message())  # type: ignore[attr-defined]
            sys.exit(0)
        ctx = getattr(exc, "ctx", None)
        where = ctx.command_path if ctx else "wfrun"
        print(f"error: {exc.format_message()} (see '{where} --help')",  # type: ignore[attr-defined]
              file=sys.stderr)
        code = exc.exit_code  # type: ignore[attr-defined]
    except ClickException as exc:
        print(f"error: {exc.format_message()}", file=sys.stderr)  # type: ignore[attr-defined]
        code = exc.exit_code  # type: ignore[attr-defined]
    except typer.Abort:
        print("error: aborted", file=sys.stderr)
        code = 1
    sys.exit(code if isinstance(code, int) else 0)


__all__ = ["app", "main"]
