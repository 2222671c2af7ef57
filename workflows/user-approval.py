"""user-approval: Mastra's suspend/resume example in wfrun terms.

Mastra runs the suspended step again on resume; in wfrun a suspended step does not execute
again, so the decision is read by the next step from `resume_data` and `suspend_data`.
"""


def user_approval(ctx):
    request_id = ctx.input["requestId"]
    ctx.flow.suspend(data={
        "reason": "User approval required",
        "requestDetails": f"Request {request_id} pending review",
    })
    return {"requestId": request_id}


def result(ctx):
    step = ctx.steps["user-approval"]
    approved = (step.resume_data or {}).get("approved", False)  # null after a timeout
    suspend_data = step.suspend_data or {}
    decision = "Approved" if approved else "Rejected"
    return {"result": f"{suspend_data.get('requestDetails')} - {suspend_data.get('reason')} "
                      f"- Decision: {decision}"}
