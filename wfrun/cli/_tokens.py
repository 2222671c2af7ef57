"""`wfrun token create|list|revoke`: bearer tokens that start runs over HTTP."""

import sys
from typing import Annotated, Any

import typer

from wfrun.errors import UsageError

from . import _stdout
from ._app import JsonOpt, app, emit_json, handle_errors, said_missing_state_dir
from ._settings import settings

ACTIONS = ("create", "list", "revoke")


def _complete_action(incomplete: str) -> list[str]:
    return [a for a in ACTIONS if a.startswith(incomplete)]


@app.command()
@handle_errors
def token(
    action: Annotated[str, typer.Argument(
        metavar="create|list|revoke", help="create (a token for --workflow), list, or revoke NAME.",
        autocompletion=_complete_action, show_default=False)],
    target: Annotated[str | None, typer.Argument(
        metavar="[NAME]", help="The token to revoke.", show_default=False)] = None,
    workflow: Annotated[str | None, typer.Option(
        help="create: the workflow the token may start runs of (its name).")] = None,
    name: Annotated[str | None, typer.Option(
        help="create: a name for the token (default: WORKFLOW-N).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Bearer tokens for POST /workflows/WORKFLOW/runs (wfrun serve): create one (printed once;
    only its hash is kept), list them, or revoke one by name.

    `create` prints the token alone on stdout (TOKEN=$(wfrun token create ...) keeps it) and
    how to use it on stderr. Exit 4 for an unknown workflow or token name, 3 for a name taken.

    Example: wfrun token create --workflow webhook-order --name shop
    """
    if action not in ACTIONS:
        raise UsageError(f"unknown token action {action!r}: use create, list or revoke "
                         "(wfrun token create --workflow NAME)")
    extra = {"NAME": target, "--workflow": workflow, "--name": name}
    allowed = {"create": ("--workflow", "--name"), "list": (), "revoke": ("NAME",)}[action]
    unexpected = [k for k, v in extra.items() if v is not None and k not in allowed]
    if unexpected:
        raise UsageError(f"'wfrun token {action}' takes no {unexpected[0]}"
                         + ("; give the token's name: wfrun token revoke NAME"
                            if action == "revoke" and unexpected[0] == "--name" else ""))
    engine = settings().engine()
    if action == "create":
        _create(engine, workflow, name, as_json)
    elif action == "list":
        _list(engine, as_json)
    else:
        if target is None:
            raise UsageError("name the token to revoke: wfrun token revoke NAME "
                             "('wfrun token list' shows them)")
        _revoke(engine, target, as_json)


def _now(engine: Any) -> str:
    from wfrun.durations import to_iso

    return str(to_iso(engine.clock.now()))


def _create(engine: Any, workflow: str | None, name: str | None, as_json: bool) -> None:
    from wfrun import tokens
    from wfrun.manifest import NAME_PATTERN

    if workflow is None:
        raise UsageError("name the workflow the token may start: wfrun token create "
                         "--workflow NAME")
    if not NAME_PATTERN.fullmatch(workflow):
        raise UsageError(f"--workflow {workflow[:80]!r}: give the workflow's name (as in the URL "
                         "/workflows/NAME/runs), not a path; 'wfrun workflows' lists them")
    if name is not None:
        tokens.check_name(name)
    _stdout.divert()  # what its module writes to descriptor 1 as it is imported goes to stderr
    engine.workflow(workflow)  # it must exist and load: exit 4 or 2 now, not on a request
    token, record = tokens.create(engine.store, workflow, name, _now(engine))
    url = f"{engine.base_url.rstrip('/')}/workflows/{workflow}/runs"
    if as_json:
        emit_json({**tokens.public(record), "token": token, "url": url})
        return
    print(token, flush=True)
    print(f"Token '{record['name']}' may start runs of workflow {workflow}. It is shown only "
          "this once (wfrun keeps only its hash): store it as a secret.", file=sys.stderr)
    print(f"Start a run: POST {url} with the header 'Authorization: Bearer TOKEN' and the "
          "run's input as a JSON body (wfrun serve answers it).", file=sys.stderr)
    print(f"Revoke it: {settings().command()} token revoke {record['name']}", file=sys.stderr)


def _list(engine: Any, as_json: bool) -> None:
    from wfrun import tokens

    said = said_missing_state_dir()  # no token there (and nothing is made)
    records = [] if said else [tokens.public(r) for r in engine.store.tokens()]
    if as_json:
        emit_json(records)
        return
    from . import _render

    _render.table(["name", "workflow", "created", "revoked"],
                  [[r["name"], r["workflow"], r["created_at"], r["revoked_at"] or "no"]
                   for r in records],
                  "no tokens; make one with: wfrun token create --workflow NAME", whole=(0, 2, 3))


def _revoke(engine: Any, name: str, as_json: bool) -> None:
    from wfrun import tokens

    record, revoked_now = tokens.revoke(engine.store, name, _now(engine))
    if as_json:
        emit_json(tokens.public(record))
        return
    if revoked_now:
        print(f"Token '{name}' (workflow {record['workflow']}) is revoked: requests with it "
              "now get 404.")
    else:
        print(f"Token '{name}' (workflow {record['workflow']}) was already revoked at "
              f"{record['revoked_at']}.")
