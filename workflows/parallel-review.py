"""parallel-review: two `wait: true` steps in parallel, joined by `finalize`."""


def prepare(ctx):
    return {"document": ctx.input["document"]}


def finalize(ctx):
    # A wait step's output is the data it was resumed with.
    technical = ctx.steps["technical-review"].output
    legal = ctx.steps["legal-review"].output
    approved = technical["approved"] and legal["approved"]
    return {"document": ctx.input["document"], "decision": "approved" if approved else "rejected"}
