"""Steps of batch-approval: the child workflow approve-item does the per-item work."""


def split(ctx):
    """The items to review, in order; `review` runs one approve-item child run per item."""
    return [dict(item) for item in ctx.input["items"]]


def summary(ctx):
    """One line per item, in the batch's order (foreach keeps the order of its input)."""
    decisions = ctx.steps["review"].output
    approved = [d["id"] for d in decisions if d["approved"]]
    return {
        "approved": approved,
        "rejected": [d["id"] for d in decisions if not d["approved"]],
        "total_approved": sum(d["amount"] for d in decisions if d["approved"]),
    }
