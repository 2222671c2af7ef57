"""delayed-notification: code, a `sleep:` step, code. Nothing runs while the run sleeps."""


def schedule(ctx):
    return {"to": ctx.input["to"], "message": "Your report is ready"}


def send(ctx):
    note = ctx.steps["schedule"].output
    outbox = ctx.input.get("outbox")
    if outbox:  # the simulated notification service: a local file
        with open(outbox, "a", encoding="utf-8") as fh:
            fh.write(f"to {note['to']}: {note['message']}\n")
    return {"sent_to": note["to"]}
