"""What `wfrun init` writes: a manifest, a step module and a pytest file per template.

`__NAME__` stands for the workflow's name and `__IDENT__` for it as a Python identifier.
"""

from __future__ import annotations

import json
from dataclasses import dataclass


@dataclass(frozen=True)
class Template:
    """The three files of a new workflow, and an input to try it with."""

    manifest: str
    module: str
    test: str
    sample_input: str


HELLO = Template(
    manifest="""\
name: __NAME__
description: Greet someone, then say what was said.
input_schema:
  type: object
  properties:
    who: {type: string}
output: goodbye                     # this step's output is the run's output
steps:
  - id: hello                       # runs `hello` in the .py file
  - id: goodbye                     # needs the previous step by default
""",
    module='''\
"""Steps of the __NAME__ workflow.

Each step function receives `ctx` and returns JSON-serialisable output.
"""


def hello(ctx):
    who = ctx.input.get("who", "world")
    ctx.log.info("greeting %s", who)  # kept: `wfrun logs RUN` shows it
    return {"greeting": f"Hello, {who}!"}


def goodbye(ctx):
    greeting = ctx.steps["hello"].output["greeting"]
    print(greeting)  # kept as well, and echoed on stderr
    return {"said": greeting}
''',
    test='''\
"""Tests of the __NAME__ workflow, using the `wfrun_harness` fixture."""
__MARKER__

def test___IDENT___greets(wfrun_harness):
    run = wfrun_harness.start("__NAME__", {"who": "Ada"})
    assert run["status"] == "completed"
    assert run["output"] == {"said": "Hello, Ada!"}
    assert wfrun_harness.output(run["run_id"], "goodbye") == "Hello, Ada!\\n"


def test___IDENT___defaults_to_world(wfrun_harness):
    run = wfrun_harness.start("__NAME__")
    assert run["output"] == {"said": "Hello, world!"}
''',
    sample_input='{"who": "Ada"}',
)

APPROVAL = Template(
    manifest="""\
name: __NAME__
description: Submit a request, wait up to 3 days for a decision, then act on it.
input_schema:
  type: object
  required: [item]
  properties:
    item: {type: string}
output: finish
steps:
  - id: submit
  - id: approval
    wait: true                      # no code: the run pauses until `wfrun resume`
    timeout: 3d                     # how long it may wait ...
    on_timeout: cancel              # ... and then: cancel, resume (with null) or fail
    resume_schema:                  # `wfrun resume --data` must match this
      type: object
      required: [approved]
      properties:
        approved: {type: boolean}
        by: {type: string}
  - id: finish
""",
    module='''\
"""Steps of the __NAME__ workflow: submit, (wait for approval), finish."""


def submit(ctx):
    item = ctx.input["item"]
    ctx.log.info("approval requested for %s", item)
    return {"item": item}


def finish(ctx):
    decision = ctx.steps["approval"].output  # a wait step's output is its resume data
    item = ctx.steps["submit"].output["item"]
    return {"item": item, "approved": decision["approved"], "by": decision.get("by")}
''',
    test='''\
"""Tests of the __NAME__ workflow, using the `wfrun_harness` fixture."""

import pytest
from wfrun.errors import SchemaViolation
__MARKER__

def test___IDENT___is_approved(wfrun_harness):
    run = wfrun_harness.start("__NAME__", {"item": "laptop"})
    assert run["status"] == "suspended"
    assert [s["step"] for s in run["suspended"]] == ["approval"]
    done = wfrun_harness.resume(run["run_id"], {"approved": True, "by": "ann"})
    assert done["status"] == "completed"
    assert done["output"] == {"item": "laptop", "approved": True, "by": "ann"}


def test___IDENT___refuses_bad_data(wfrun_harness):
    run = wfrun_harness.start("__NAME__", {"item": "laptop"})
    with pytest.raises(SchemaViolation):
        wfrun_harness.resume(run["run_id"], {"approved": "yes"})
    assert wfrun_harness.show(run["run_id"])["status"] == "suspended"


def test___IDENT___is_cancelled_after_three_days(wfrun_harness):
    run = wfrun_harness.start("__NAME__", {"item": "laptop"})
    wfrun_harness.advance("2d23h")  # move the fake clock and tick: not due yet
    assert wfrun_harness.show(run["run_id"])["status"] == "suspended"
    wfrun_harness.advance("1h")  # the deadline passes: on_timeout: cancel
    assert wfrun_harness.show(run["run_id"])["status"] == "cancelled"
''',
    sample_input='{"item": "laptop"}',
)

POLLING = Template(
    manifest="""\
name: __NAME__
description: Start a job, poll it every 30 seconds (at most 10 more times), then report.
input_schema:
  type: object
  required: [status_file]
  properties:
    status_file: {type: string}     # stands in for the job's status API
output: report
steps:
  - id: start-job                   # runs the function `start_job`
  - id: poll                        # reruns itself (ctx.flow.rerun) until done
  - id: report
""",
    module='''\
"""Steps of the __NAME__ workflow: start a job, poll it, report."""

import json

MAX_RETRIES = 10  # reruns: poll executes at most MAX_RETRIES + 1 times
DELAY = "30s"


def start_job(ctx):
    # Replace with a call that starts the real job; here a file plays the job service.
    with open(ctx.input["status_file"], "w", encoding="utf-8") as fh:
        json.dump({"status": "RUNNING"}, fh)
    return {"job": ctx.run_id}


def check_status(ctx):
    """Replace with a call to the job's status API."""
    with open(ctx.input["status_file"], encoding="utf-8") as fh:
        return json.load(fh)


def poll(ctx):
    job = check_status(ctx)
    if job.get("status") == "DONE":
        return job  # the run moves on to `report`
    if ctx.run.runs > MAX_RETRIES:
        raise RuntimeError(f"job still {job.get('status')} after {ctx.run.runs} polls")
    ctx.flow.rerun(DELAY, None, MAX_RETRIES)  # `wfrun tick` runs this step again in 30s
    return job


def report(ctx):
    poll = ctx.steps["poll"]
    return {"result": poll.output.get("result"), "polls": poll.runs}
''',
    test='''\
"""Tests of the __NAME__ workflow, using the `wfrun_harness` fixture."""

import json
__MARKER__

def test___IDENT___polls_until_done(wfrun_harness, tmp_path):
    status = tmp_path / "job.json"
    run = wfrun_harness.start("__NAME__", {"status_file": str(status)})
    assert run["status"] == "waiting"
    wfrun_harness.advance("30s")  # moves the fake clock, then ticks: poll runs again
    assert wfrun_harness.show(run["run_id"])["steps"]["poll"]["runs"] == 2
    status.write_text(json.dumps({"status": "DONE", "result": 42}))
    wfrun_harness.advance("30s")
    final = wfrun_harness.show(run["run_id"])
    assert final["status"] == "completed"
    assert final["output"] == {"result": 42, "polls": 3}


def test___IDENT___gives_up(wfrun_harness, tmp_path):
    status = tmp_path / "job.json"
    run = wfrun_harness.start("__NAME__", {"status_file": str(status)})
    for _ in range(10):
        wfrun_harness.advance("30s")
    final = wfrun_harness.show(run["run_id"])
    assert final["status"] == "failed"
    assert final["error"]["type"] == "RuntimeError"
''',
    sample_input='{"status_file": "job.json"}',
)

TEMPLATES = {"hello": HELLO, "approval": APPROVAL, "polling": POLLING}


def render(text: str, name: str, workflows_dir: str | None = None) -> str:
    """Fill a template's text in for workflow `name`; in a test, point the fixture at
    `workflows_dir` (relative to the test file) when it is not the default `workflows/`."""
    marker = "\n"
    if workflows_dir is not None:
        imports = "" if "import pytest\n" in text else "\nimport pytest\n"
        marker = f"{imports}\npytestmark = pytest.mark.wfrun(workflows_dir={json.dumps(workflows_dir)})\n\n"
    return (text.replace("__MARKER__\n", marker)
            .replace("__NAME__", name).replace("__IDENT__", name.replace("-", "_")))
