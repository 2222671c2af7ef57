"""daily-report: started by its schedule every weekday (see daily-report.yaml), or by hand with
`wfrun start daily-report --input '{"team": "sales", "to": ["ann@example.com"]}'`."""


def gather(ctx):
    # The run id of a scheduled run carries its fire time in UTC: sched-daily-report-20261202T0800Z.
    stamp = ctx.run_id.rsplit("-", 1)[-1]
    day = f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}" if ctx.run_id.startswith("sched-") else "today"
    # A real report would query a database here; the simulated figures depend on the team only.
    return {"team": ctx.input["team"], "day": day, "orders": 12 * len(ctx.input["team"])}


def render(ctx):
    figures = ctx.steps["gather"].output
    return f"{figures['team']} on {figures['day']}: {figures['orders']} orders"


def send(ctx):
    report = ctx.steps["render"].output
    outbox = ctx.input.get("outbox")
    if outbox:  # the simulated mail service: a local file
        with open(outbox, "a", encoding="utf-8") as fh:
            for to in ctx.input["to"]:
                fh.write(f"to {to}: {report}\n")
    return {"sent_to": ctx.input["to"], "report": report}
