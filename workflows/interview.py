"""interview: one step asks two questions with `ctx.flow.ask()`.

Each `ask()` without an answer suspends the run; `wfrun resume` hands the answer, and the step
executes again from the top: the first `ask()` then returns the first answer at once, the second
suspends again, and so on. Code before an `ask()` therefore runs once per resume: keep it free
of side effects, or guard them (here the log line says which execution it is).
"""


def prepare(ctx):
    return {"candidate": ctx.input["candidate"], "questions": 2}


def interview(ctx):
    candidate = ctx.steps["prepare"].output["candidate"]
    ctx.log.info("interviewing %s (execution %d)", candidate, ctx.run.runs)
    role = ctx.flow.ask(
        data={"question": f"Which role is {candidate} applying for?"},
        schema={"type": "string", "minLength": 1},
    )
    if role is None:  # nobody answered within the timeout: stop asking
        return {"candidate": candidate, "role": None, "years": None}
    years = ctx.flow.ask(
        data={"question": f"How many years of experience does {candidate} have for {role}?"},
        schema={"type": "integer", "minimum": 0},
    )
    return {"candidate": candidate, "role": role, "years": years}


def welcome(ctx):
    answers = ctx.steps["interview"].output
    if answers["role"] is None:
        return {"message": f"No answer for {answers['candidate']}; interview closed."}
    level = "senior" if (answers["years"] or 0) >= 5 else "junior"
    return {"message": f"Welcome {answers['candidate']}, {level} {answers['role']}!"}
