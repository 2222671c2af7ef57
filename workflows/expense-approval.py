"""Steps of the expense-approval example: submit, pay or reject, notify."""


def submit(ctx):
    ctx.log.info("expense of %s submitted by %s", ctx.input["amount"], ctx.input["user"])
    return {"id": f"exp-{ctx.run_id[-6:]}", "user": ctx.input["user"], "amount": ctx.input["amount"]}


def pay(ctx):
    expense = ctx.steps["submit"].output
    reviewer = (ctx.steps["manager-approval"].resume_data or {}).get("reviewer", "unknown")
    return {"paid": expense["amount"], "to": expense["user"], "approved_by": reviewer}


def reject(ctx):
    return {"rejected": ctx.steps["submit"].output["id"]}


def notify(ctx):
    decision = ctx.steps["manager-approval"].action
    return {"notified": ctx.input["user"], "decision": decision}
