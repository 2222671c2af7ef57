"""`wfrun send RUN EVENT`: send an event to a run (SPEC §3, §5)."""

import sys
from typing import Annotated

import typer

from wfrun.ids import check_run_id

from . import _complete, _input
from ._app import JsonOpt, VerboseOpt, app, echo_steps, emit_json, executing, handle_errors, run_failed
from ._settings import settings, with_hint


@app.command()
@handle_errors
def send(
    run_id: Annotated[str, typer.Argument(
        help="The run to send the event to.", autocompletion=_complete.run_ids)],
    event: Annotated[str, typer.Argument(help="The event's name (as wait_for_event names it).")],
    data: Annotated[str | None, typer.Option("--data", "-d",
                                             help="The event's data: JSON, @file or -.")] = None,
    as_json: JsonOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Send an event to a run: a step waiting for it takes it and the run continues; else it
    is kept in the run's inbox, in order, for the next step that waits for it.

    Example: wfrun send RUN payment-received --data '{"amount": 42}'
    """
    echo_steps(verbose)
    check_run_id(run_id)
    _input.check_text(event, "EVENT")
    _, payload = _input.read_payload(data, "--data")
    engine = settings().engine()
    executing(engine, run_id)
    result = engine.send(run_id, event, payload)
    doc = engine.document(result)
    doc["warnings"] = [with_hint(w) for w in doc["warnings"]]  # (a run taken over: how to see it)
    if as_json:
        doc["sent"] = {"event": event, "status": result.status, "step": result.step}
        emit_json(doc)
        if doc["warnings"]:
            print("\n".join(f"warning: {w}" for w in doc["warnings"]), file=sys.stderr)
    else:
        from . import _render

        if result.step is None:
            kept = sum(1 for e in doc.get("inbox", []) if e.get("name") == event)
            print(f"Event '{event}' kept in the inbox of run {run_id} ({kept} kept): the next "
                  "step that waits for it takes it.")
        else:
            print(f"Event '{event}' taken by step '{result.step}' of run {run_id}.")
        _render.warnings(doc["warnings"])
        _render.run(doc)
    if doc["status"] == "failed":
        run_failed(run_id, doc.get("error"), frames=as_json)  # on stderr, as start says it
        raise typer.Exit(1)
