"""poll-job: start a job, poll its status with `ctx.flow.rerun`, report the result.

The "external job" is a JSON file whose path comes from the input: `start-job` writes
`{"status": "RUNNING"}` to it; whoever plays the job service later writes
`{"status": "DONE", "result": ...}`. No network is involved.

`wfrun tick` (cron) fires each rerun when its delay has passed.
"""

import json

MAX_RETRIES = 3   # reruns allowed: the step executes at most MAX_RETRIES + 1 times
DELAY = "10s"     # wfrun counts seconds ("10s", 10, timedelta); Pipedream counted ms


def start_job(ctx):
    with open(ctx.input["status_file"], "w", encoding="utf-8") as fh:
        json.dump({"status": "RUNNING"}, fh)
    return {"job": ctx.run_id}


def poll(ctx):
    run = ctx.run  # run.runs counts from 1; run.context is what the last rerun() passed
    with open(ctx.input["status_file"], encoding="utf-8") as fh:
        job = json.load(fh)
    if job.get("status") == "DONE":
        return job  # done: this is the step's output and the run moves on
    if run.runs == MAX_RETRIES + 1:
        # A rerun() past max_retries would be ignored and the run would go on to `report`;
        # raising instead fails the run (exit code 1), as in Pipedream's example.
        raise RuntimeError(f"Max retries exceeded: job still {job.get('status')}")
    seen = (run.context or {}).get("polls", 0) + 1
    ctx.flow.rerun(DELAY, {"polls": seen}, MAX_RETRIES)  # poll again in 10s
    return {"status": job.get("status"), "polls": seen}


def report(ctx):
    job = ctx.steps["poll"].output
    return {"result": job.get("result"), "polled": ctx.steps["poll"].runs}
