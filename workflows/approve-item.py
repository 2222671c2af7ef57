"""Steps of approve-item, run on its own or as a child run of batch-approval."""

LIMIT = 100


def check(ctx):
    """Route small amounts straight through; larger ones need a person (the `approve` step)."""
    item = ctx.input
    ctx.flow.route("auto" if item["amount"] <= LIMIT else "needs-approval")
    return {"id": item["id"], "amount": item["amount"]}


def decide(ctx):
    """The item's decision: automatic under the limit, else what the approver said."""
    item = ctx.input
    answer = ctx.steps["approve"].output if ctx.steps["approve"].status == "completed" else None
    if answer is None:
        return {"id": item["id"], "amount": item["amount"], "approved": True, "by": "auto"}
    return {"id": item["id"], "amount": item["amount"], "approved": bool(answer["approved"]),
            "by": answer.get("by", "someone")}
