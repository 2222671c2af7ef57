"""release-signoff: two of three maintainers approve a release (N-of-M approvals)."""


def _by(ctx, action):
    """The approvers who decided `action` on the sign-off, in the order they decided."""
    decisions = ctx.steps["signoff"].output["approvals"]
    return [d["by"] for d in decisions if d["action"] == action]


def release(ctx):
    return {"released": ctx.input["version"], "approved_by": _by(ctx, "approved")}


def abort(ctx):
    return {"aborted": ctx.input["version"], "rejected_by": _by(ctx, "rejected")}
