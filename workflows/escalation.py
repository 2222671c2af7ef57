"""escalation: Flowcraft's escalation pattern, a wait with a timeout, then a sleep, then escalate.

A response of `{"status": "resolved"}` closes the ticket. No response within 4 hours (the wait
times out and resumes with `null`) or `{"status": "pending"}` starts a 24-hour timer, after
which the ticket is escalated. The run's output is that of the last step that completed.
"""


def submit(ctx):
    return {"ticket": ctx.input["ticket"], "status": "open"}


def triage(ctx):
    response = ctx.steps["initial-response"].resume_data
    if response is not None and response["status"] == "resolved":
        ctx.flow.route("resolved")
        return {"resolved_by": response.get("by")}
    ctx.flow.route("pending")
    return {"escalate_in": "24h", "reason": "no response" if response is None else "still pending"}


def escalate(ctx):
    message = f"ticket {ctx.input['ticket']} escalated to a manager"
    pager = ctx.input.get("pager")
    if pager:
        with open(pager, "a", encoding="utf-8") as fh:  # the simulated pager
            fh.write(message + "\n")
    return {"ticket": ctx.input["ticket"], "escalated": True,
            "reason": ctx.steps["triage"].output["reason"]}


def close(ctx):
    return {"ticket": ctx.input["ticket"], "escalated": False,
            "resolved_by": ctx.steps["triage"].output["resolved_by"]}
