"""payment-order: waiting for a named event that may arrive before anything waits for it.

`invoice` hands the payment provider the URL that sends "payment-received" to this run
(`ctx.flow.event_url`); the customer may pay while the warehouse is still packing (`pack`,
resumed with the parcel). `await-payment` then waits for the event: if it was sent already, it
was kept in the run's inbox and is taken at once; if not, the run waits (7 days, then it is
cancelled). Send it with `wfrun send RUN payment-received --data '{"amount": 42, "reference":
"..."}'` or a POST to the URL.
"""

PAYMENT = {
    "type": "object",
    "required": ["amount", "reference"],
    "properties": {"amount": {"type": "number"}, "reference": {"type": "string", "minLength": 1}},
}


def invoice(ctx):
    # What a real step would send to the payment provider with the invoice: where to call back.
    return {"order": ctx.input["order"], "amount": ctx.input["amount"],
            "callback_url": ctx.flow.event_url("payment-received")}


def await_payment(ctx):
    ctx.flow.wait_for_event("payment-received", schema=PAYMENT)
    return {"order": ctx.input["order"], "awaiting": ctx.input["amount"]}


def ship(ctx):
    payment = ctx.steps["await-payment"].resume_data
    if payment["amount"] < ctx.input["amount"]:
        raise ValueError(f"order {ctx.input['order']} is paid {payment['amount']} of "
                         f"{ctx.input['amount']}; not shipped")
    return {"order": ctx.input["order"], "parcel": ctx.steps["pack"].resume_data["parcel"],
            "paid": payment["amount"], "reference": payment["reference"]}
