"""suspend-timeout: a 7-day suspension set from code, as Pipedream's `$.flow.suspend(TIMEOUT)`.

Arguments of `ctx.flow.suspend()` win over the step's `timeout:` / `on_timeout:` keys, which
win over the defaults (24 h, cancel). With `on_timeout="resume"` the run goes on after 7 days
with `resume_data = None` (Pipedream resumes a timed-out suspension); `wfrun tick` applies it.
"""

from datetime import timedelta

TIMEOUT = timedelta(days=7)  # Pipedream: 1000 * 60 * 60 * 24 * 7 ms; "7d" works too


def request_review(ctx):
    order = ctx.input["order"]
    links = ctx.flow.suspend(timeout=TIMEOUT, on_timeout="resume", data={"order": order})
    print(f"review order {order} within 7 days: {links.resume_command}")
    return {"order": order}


def decide(ctx):
    order = ctx.input["order"]
    review = ctx.steps["request-review"].resume_data
    if review is None:  # nobody answered within 7 days
        return {"order": order, "decision": "approved", "by": "timeout"}
    return {"order": order, "decision": "approved" if review["approved"] else "rejected",
            "by": review.get("by", "someone")}
