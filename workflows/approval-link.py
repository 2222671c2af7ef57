"""approval-link: a code step suspends itself and hands its links to a person.

Pipedream's `$.flow.suspend()`: the step gets its resume/cancel links *before* the run pauses,
sends them somewhere (here: an "outbox" file standing in for email, and the step's printed
output, which `wfrun logs RUN` shows and `--verbose` echoes), and the run pauses when the step
returns. `wfrun resume` (or the URL, answered by `wfrun serve`)
continues it; `wfrun cancel` ends it.
"""

import sys


def request_approval(ctx):
    document = ctx.input["document"]
    links = ctx.flow.suspend(data={"document": document, "question": f"Publish {document}?"})
    message = (
        f"Please approve publishing {document}.\n"
        f"  approve: {links.resume_command}\n"
        f"  cancel:  {links.cancel_command}\n"
        f"  (URLs for 'wfrun serve': {links.resume_url} / {links.cancel_url})\n"
    )
    outbox = ctx.input.get("outbox")
    if outbox:
        with open(outbox, "a", encoding="utf-8") as fh:  # the simulated email
            fh.write(message)
    # Kept with the run (`wfrun logs RUN`; echoed to stderr with --verbose), like any print.
    print(message, file=sys.stderr, end="")
    ctx.log.info("approval requested for %s", document)
    # The step's output is still its return value; the run pauses after this.
    return {"requested": document, "resume_command": links.resume_command}


def publish(ctx):
    answer = ctx.steps["request-approval"].resume_data or {}
    return {"published": ctx.input["document"], "note": answer.get("note")}
