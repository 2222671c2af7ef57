"""conditional-branching: `when:` on the action a resume sets (`wfrun resume --action`).

A code step can also choose a branch itself with `ctx.flow.route("choose-a")`.
"""


def start(ctx):
    return {"ready": True}


def path_a(ctx):
    return {"path": "a"}


def path_b(ctx):
    return {"path": "b"}


def report(ctx):
    taken = "path-a" if ctx.steps["path-a"].status == "completed" else "path-b"
    reason = (ctx.steps["decision-point"].resume_data or {}).get("reason")
    return {"took": taken, "reason": reason}
