"""retry-request: Pipedream's "retrying a failed API request", with `ctx.flow.rerun` in `except`.

Only a failed request is retried: a rerun is asked for in the `except` block. After
MAX_RETRIES reruns a further `rerun()` is ignored and the run goes on to `report` with the
step's last return value (Pipedream's behaviour); raise there instead to fail the run.
The API in the tests is a local HTTP server on 127.0.0.1; no internet host is involved.
"""

import json
import urllib.error
import urllib.request

MAX_RETRIES = 3  # the step executes at most 4 times
DELAY = "30s"    # Pipedream: 1000 * 30 ms; wfrun counts seconds ("30s", 30 or a timedelta)


def call_api(ctx):
    try:
        with urllib.request.urlopen(ctx.input["url"], timeout=10) as response:
            body = json.loads(response.read() or b"null")
        return {"ok": True, "status": response.status, "body": body}
    except (urllib.error.URLError, OSError, ValueError) as exc:  # HTTP 5xx raises HTTPError
        ctx.log.warning("request failed (execution %d): %s", ctx.run.runs, exc)
        ctx.flow.rerun(DELAY, None, MAX_RETRIES)  # ignored once MAX_RETRIES reruns happened
        return {"ok": False, "error": str(exc)}


def report(ctx):
    call = ctx.steps["call-api"]
    if not call.output["ok"]:
        return {"delivered": False, "attempts": call.runs, "error": call.output["error"]}
    return {"delivered": True, "attempts": call.runs, "body": call.output["body"]}
