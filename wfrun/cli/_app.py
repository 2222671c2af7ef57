"""The typer application, global options, error handling and output helpers shared by commands."""

# No `from __future__ import annotations` here nor in the command modules (nor _complete's
# autocompletion callbacks): typer reads a command's parameters with inspect.signature(eval_str=True)
# and typing.get_type_hints each time it builds the command, which compiles and evaluates every
# string annotation, twice per command. Evaluated once at import instead, they save a cold command
# a few ms (SPEC §9; tests/project/test_startup_imports.py checks it).

import functools
import json
import signal
import sys
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import typer

from wfrun._cite import cited
from wfrun._threads import own_thread
from wfrun.errors import Interrupted, WfrunError

from . import _stdout
from ._settings import (
    DEFAULT_STATE_DIR,
    DEFAULT_WORKFLOWS_DIR,
    Settings,
    settings,
    use,
    with_hint,
)

F = TypeVar("F", bound=Callable[..., Any])

# The order `wfrun --help` lists commands in: a run's life first, then operations.
COMMAND_ORDER = ("start", "resume", "send", "cancel", "show", "list", "pending", "logs", "tick",
                 "schedules", "retry",
                 "fork", "serve", "token", "validate", "workflows", "graph", "init", "doctor", "prune",
                 "state")


class _OrderedGroup(typer.core.TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        from ._complete import setup_options

        self.params.extend(setup_options())  # --install-completion [SHELL], ...

    def list_commands(self, ctx: Any) -> list[str]:
        names = super().list_commands(ctx)
        rank = {name: i for i, name in enumerate(COMMAND_ORDER)}
        return sorted(names, key=lambda name: rank.get(name, len(rank)))


app = typer.Typer(
    name="wfrun",
    cls=_OrderedGroup,
    help="A durable workflow runner: start, suspend, resume, rerun and sleep, with local files.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    pretty_exceptions_enable=False,
    add_completion=False,  # wfrun's own --install-completion/--show-completion [SHELL]
    rich_markup_mode=None,
    epilog="\b\nExample: wfrun start expense-approval --input '{\"user\": \"ann\", \"amount\": 42}'",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
VerboseOpt = Annotated[bool, typer.Option(
    "--verbose", "-v", help="Echo what steps print and log (ctx.log) to stderr as they run.")]


@app.callback()
def _globals(
    ctx: typer.Context,
    store: Annotated[str | None, typer.Option(
        envvar="WFRUN_STORE", show_default=False,
        help="Where runs are kept, as a URL: file:PATH (default file:.wfstate) or "
             "postgresql://USER@HOST:PORT/DB.")] = None,
    state_dir: Annotated[str, typer.Option(envvar="WFRUN_STATE_DIR",
                                           help="Where runs are kept: a directory (the same as "
                                                "--store file:DIR).")] = DEFAULT_STATE_DIR,
    workflows_dir: Annotated[str, typer.Option(envvar="WFRUN_WORKFLOWS_DIR",
                                               help="Where workflows are found.")]
    = DEFAULT_WORKFLOWS_DIR,
    version: Annotated[bool, typer.Option(
        "--version", is_eager=True, callback=lambda shown: _version(shown),
        help="Print wfrun's version and exit.")] = False,
) -> None:
    """wfrun: durable workflows from the command line.

    Example: wfrun start expense-approval --input '{"user": "ann", "amount": 42}'
    """
    # given on the command line or by WFRUN_STATE_DIR, even when equal to the default
    source = getattr(ctx.get_parameter_source("state_dir"), "name", None)
    explicit = source in ("COMMANDLINE", "ENVIRONMENT")
    # an option on the command line wins over the other one's environment variable (the
    # environment is a default; both named in one place, differently, are refused)
    store_source = getattr(ctx.get_parameter_source("store"), "name", None)
    if store is not None and {store_source, source} == {"COMMANDLINE", "ENVIRONMENT"}:
        if source == "COMMANDLINE":
            store = None
        else:
            explicit = False
    use(Settings(state_dir, workflows_dir, explicit, store))


def _version(asked: bool) -> None:
    """`wfrun --version`: the installed distribution's version."""
    if asked:
        from importlib.metadata import version

        print(f"wfrun {version('wfrun')}")
        raise typer.Exit(0)


def handle_errors(function: F) -> F:
    """Turn wfrun errors into one sentence on stderr and the exit code of SPEC §5; Ctrl-C (exit
    130) and SIGTERM (143, see `executing`) into a sentence saying what became of the run."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        own_thread()  # what the command writes outside its steps is never a step's output
        try:
            return function(*args, **kwargs)
        except WfrunError as exc:
            from ._render import error

            error(with_hint(exc.message))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt as exc:
            print(_interrupted(exc), file=sys.stderr)
            raise typer.Exit(143 if isinstance(exc, Terminated) else 130) from None
        except BrokenPipeError:
            raise typer.Exit(_stdout.reader_gone()) from None
        finally:
            _done_executing()

    return wrapper  # type: ignore[return-value]


class Terminated(Interrupted):
    """SIGTERM, raised wherever the process is, as Ctrl-C raises KeyboardInterrupt."""


# What the command executes: (engine, run id, or None for tick's runs), and the signal handlers
# to put back when it is done (a CliRunner test runs commands inside the test process).
_executing: list[tuple[Any, str | None]] = []
_handlers: dict[int, Any] = {}


def executing(engine: Any, run_id: str | None) -> None:
    """Say which run this command executes steps of (None: whichever tick advances), so that
    an interruption can say what became of it; SIGTERM then interrupts as Ctrl-C does."""
    _executing[:] = [(engine, run_id)]
    _stdout.divert()  # what steps' subprocesses write to descriptor 1 goes to stderr
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL and _main_thread():
        _handlers.setdefault(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, _terminate)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler and _main_thread():
        # Ctrl-C raises Interrupted: a KeyboardInterrupt a step raises itself fails the step
        _handlers.setdefault(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGINT, _interrupt)


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted


_terminate.raises_interrupted = _interrupt.raises_interrupted = True  # type: ignore[attr-defined]


def echo_steps(verbose: bool) -> None:
    """With --verbose, what steps print and log is echoed to stderr until the command ends;
    without it, it is only kept (`wfrun logs`)."""
    if verbose:
        from wfrun.engine import set_echo

        set_echo(True)
        _echoing.append(True)


_echoing: list[bool] = []  # --verbose set the echo on: the command's end sets it off


def _done_executing() -> None:
    _executing.clear()
    _stdout.restore()
    if _echoing:
        from wfrun.engine import set_echo

        set_echo(False)
        _echoing.clear()
    while _handlers:
        signum, handler = _handlers.popitem()
        signal.signal(signum, handler)


def _interrupted(exc: KeyboardInterrupt) -> str:
    """What an interruption did to the run being executed, in one sentence."""
    what = "terminated (SIGTERM)" if isinstance(exc, Terminated) else "interrupted"
    for signum in (signal.SIGINT, signal.SIGTERM) if _main_thread() else ():
        _handlers.setdefault(signum, signal.getsignal(signum))
        signal.signal(signum, signal.SIG_IGN)  # a second signal: the sentence still goes
    if not _executing:
        return what
    engine, run_id = _executing[0]
    command = settings().command()
    tick = cited(f"{command} tick")
    if run_id is None:
        return (f"{what}: a run this tick was executing stays running; the next {tick} "
                "continues it from the step it was in")
    from wfrun.errors import NotFoundError

    try:
        run = engine.store.load(run_id)
    except NotFoundError:
        return f"{what} before run {run_id} was created; nothing was saved"
    except (WfrunError, OSError):
        return (f"{what}: run {run_id} may still be running; the next {tick} continues it "
                f"({cited(f'{command} show {run_id}')} says)")
    if run.status != "running":
        return f"{what}: run {run_id} is {run.status} ({cited(f'{command} show {run_id}')})"
    steps = [sid for sid, state in run.steps.items() if state.status == "running"]
    where = f" from step '{steps[0]}'" if len(steps) == 1 else (
        f" from steps {', '.join(repr(s) for s in steps)}" if steps else "")
    return (f"{what}: run {run_id} stays running; the next {tick} continues it{where} "
            f"(or {cited(f'{command} cancel {run_id}')} stops it)")


def said_missing_state_dir() -> bool:
    """If the file store's state directory does not exist, say so in one line on stderr (a
    cron line without `cd` is not silently idle) and return True; nothing is created."""
    missing = settings().missing_state_dir()
    if missing:
        print(f"warning: {missing}", file=sys.stderr)
    return missing is not None


def emit_json(value: Any) -> None:
    """Print a JSON document on stdout, and nothing else."""
    sys.stdout.write(json.dumps(value, indent=2, ensure_ascii=False, default=str) + "\n")


def emit_json_line(value: Any) -> None:
    """Print a JSON value on stdout as one compact line (JSON Lines: `tick --watch --json`)."""
    sys.stdout.write(json.dumps(value, ensure_ascii=False, default=str, separators=(",", ":"))
                     + "\n")


def finish_run(engine: Any, result: Any, as_json: bool, step: str | None = None) -> None:
    """Print a run document and exit 1 if the run failed (`step`: what a resume named, for
    saying where data kept for later went when it went into a child run's inbox)."""
    doc = engine.document(result)
    doc["warnings"] = [with_hint(w) for w in doc["warnings"]]  # (a run taken over: how to see it)
    if result.accepted and not as_json:
        step = doc["inbox"][-1]["step"] if doc.get("inbox") else step
        where = f"step '{step}'" if step else "the step"
        print(f"Resume accepted: {where} of run {doc['run_id']} is still executing; "
              "the data applies when it pauses.")
    if as_json:
        emit_json(doc)
        if doc["warnings"]:
            print("\n".join(f"warning: {w}" for w in doc["warnings"]), file=sys.stderr)
    else:
        from ._render import run, warnings

        warnings(doc["warnings"])
        run(doc)
    if doc["status"] == "failed":
        # on stderr, with --json too (cron reads it); the frames once: stdout has them for people
        run_failed(doc["run_id"], doc.get("error"), frames=as_json)
        raise typer.Exit(1)


def run_failed(run_id: str, error: dict[str, Any] | None, frames: bool = True) -> None:
    """On stderr: `error: run R failed: step 'S' raised TYPE: MESSAGE (wfrun show R)` and,
    indented under it, the frames of the workflow code that raised (SPEC §5; not with
    `frames=False`: the run printed for people on stdout shows them); the same for every
    command that leaves a run failed (start, resume, send, retry, fork, tick)."""
    from ._blocks import error_text, traceback_lines

    show = f"({settings().command()} show {run_id})"
    if not error:  # (deleted or damaged since tick advanced it: the line says what is known)
        print(f"error: run {run_id} failed {show}", file=sys.stderr)
        return
    lines = [f"error: run {run_id} failed: step '{error.get('step')}' raised "
             f"{error_text(error)} {show}"]
    if frames:
        lines += [f"    {text}" for text in traceback_lines(error)]
    print("\n".join(lines), file=sys.stderr)
