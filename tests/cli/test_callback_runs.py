"""A callback's rerun is execution 2, like the timer's (docs/callbacks.md, the timer or the callback): the
seeds' literal `runs == 2` test raises on a callback; the documented code tells them apart."""

from __future__ import annotations

import json
import re
from typing import Any

from conftest import REPO, Project

MANIFEST = "steps:\n  - id: wait-for-job\n"
LITERAL_PORT = """\
def wait_for_job(ctx):
    run = ctx.run
    if run.runs == 1:
        ctx.flow.rerun("1d", None, 1)
        return None
    elif run.runs == 2:
        raise RuntimeError("External service never completed job")
    else:
        return run.callback_request
"""


def _documented_module() -> str:
    """The corrected code, as docs/callbacks.md shows it."""
    text = (REPO / "docs" / "callbacks.md").read_text()
    found = re.search(r"```python\n# workflows/job-callback\.py\n(.*?)```", text, re.DOTALL)
    assert found, "docs/callbacks.md no longer shows workflows/job-callback.py"
    return found.group(1)


def test_the_literal_port_raises_when_the_callback_arrives(project: Project) -> None:
    project.workflow("job-callback", MANIFEST, LITERAL_PORT)
    project.json("start", "job-callback", "--run-id", "j1")
    out = project.run("resume", "j1", "--data", '{"rows": 1200}', "--json")
    assert out.code == 1
    doc = out.json()
    assert doc["steps"]["wait-for-job"]["runs"] == 2  # the callback's execution is run 2
    assert doc["error"]["message"] == "External service never completed job"


def test_the_documented_code_returns_the_callback_and_fails_on_the_timer(project: Project) -> None:
    project.workflow("job-callback", MANIFEST, _documented_module())

    def cli_json(*args: str) -> Any:  # in the project directory, where submit_job writes
        out = project.cli(*args, "--json")
        assert out.code == 0, (out.stdout, out.stderr)
        return out.json()

    first = cli_json("start", "job-callback", "--run-id", "j1")
    assert (first["status"], first["steps"]["wait-for-job"]["runs"]) == ("waiting", 1)
    request = json.loads((project.root / "job-request.json").read_text())
    assert request["resume_url"] == first["waiting"][0]["resume_url"]
    done = cli_json("resume", "j1", "--data", '{"rows": 1200}')
    assert (done["status"], done["output"]) == ("completed", {"rows": 1200})
    assert done["steps"]["wait-for-job"]["runs"] == 2
    cli_json("start", "job-callback", "--run-id", "j2")
    timed_out = project.cli("tick", "--now", "+2d")
    assert timed_out.code == 1
    error = cli_json("show", "j2")["error"]
    assert (error["type"], error["message"]) == ("RuntimeError",
                                                 "External service never completed job")
