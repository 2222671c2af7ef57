"""retry-api: a step that raises is retried by `wfrun tick` after its backoff.

The flaky API is simulated with a counter file from the input: the first `fail_times`
calls raise ConnectionError, later ones succeed. When `max_attempts` executions have
failed, the run fails and its error names the step, the exception type and the message.
"""

import os


def call_api(ctx):
    path = ctx.input["counter_file"]
    calls = 1
    if os.path.exists(path):
        with open(path, encoding="utf-8") as fh:
            calls = int(fh.read() or 0) + 1
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(str(calls))
    if calls <= ctx.input.get("fail_times", 2):
        raise ConnectionError(f"API temporarily unavailable (call {calls})")
    return {"status": 200, "calls": calls, "attempt": ctx.run.runs}
