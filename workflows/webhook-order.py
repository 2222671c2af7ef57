"""webhook-order: a run started over HTTP by a shop's webhook (Pipedream's HTTP trigger).

The shop POSTs the order to `/workflows/webhook-order/runs` with a token from
`wfrun token create --workflow webhook-order`; `wfrun serve` checks the body against the
manifest's `input_schema`, stores the run, answers 202, and runs these steps in the background.
The same order posted again with the same `Idempotency-Key` header is the same run.
"""


def price(ctx):
    items = ctx.input["items"]
    total = round(sum(item["qty"] * item["price"] for item in items), 2)
    return {"order": ctx.input["order"], "items": sum(item["qty"] for item in items), "total": total}


def pack(ctx):
    priced = ctx.steps["price"].output
    return {"parcel": f"parcel-{priced['order']}", "items": priced["items"]}


def confirm(ctx):
    priced, parcel = ctx.steps["price"].output, ctx.steps["pack"].output
    ctx.log.info("order %s confirmed: %d item(s), total %.2f", priced["order"], parcel["items"],
                 priced["total"])
    return {"order": priced["order"], "total": priced["total"], "parcel": parcel["parcel"],
            "email": ctx.input.get("email")}
