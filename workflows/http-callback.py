"""http-callback: Pipedream's "accept an HTTP callback" pattern with `ctx.flow.rerun`.

First execution: ask for a rerun in 24h and give the rerun's links to the external service
(simulated: a JSON request file). If the service calls back (`wfrun resume RUN --data ...`,
or an HTTP request to the resume URL, answered by `wfrun serve`), the step runs again at once with
`ctx.run.callback_request` set. If 24h pass first, `wfrun tick` reruns it with
`callback_request = None` and the step gives up.
"""

import json


def start_job(ctx):
    run = ctx.run
    if run.runs == 1:
        links = ctx.flow.rerun("24h", None, 1)  # one rerun: either the callback or the timeout
        request = {"job": ctx.run_id, "callback_command": links.resume_command,
                   "callback_url": links.resume_url}
        with open(ctx.input["request_file"], "w", encoding="utf-8") as fh:
            json.dump(request, fh)  # "POST" the job to the service
        return {"submitted": True}
    if run.callback_request is None:  # the 24h timer fired: no callback came
        raise TimeoutError("External service never completed job")
    # {"body", "headers", "query", "method", "source"}: source is "cli" or "http"
    return {"callback": run.callback_request["body"], "via": run.callback_request["source"]}


def use_result(ctx):
    return ctx.steps["start-job"].output["callback"]
