"""early-exit: `ctx.flow.exit(reason)` completes the run after this step; the rest is skipped.

The run's status is `completed`, the skipped steps are `skipped`, the reason is in the history
(`completed` event), and the output is that of the last step that completed.
"""

import os


def check(ctx):
    order, ledger = ctx.input["order"], ctx.input["ledger"]
    seen = []
    if os.path.exists(ledger):
        with open(ledger, encoding="utf-8") as fh:
            seen = fh.read().split()
    if order in seen:
        ctx.flow.exit(f"order {order} was already processed")
        return {"order": order, "duplicate": True}
    return {"order": order, "duplicate": False}


def charge(ctx):
    with open(ctx.input["ledger"], "a", encoding="utf-8") as fh:
        fh.write(ctx.input["order"] + "\n")
    return {"charged": ctx.input.get("amount", 0)}


def confirm(ctx):
    return {"order": ctx.input["order"], "charged": ctx.steps["charge"].output["charged"]}
