"""A command whose run another process took over (a lost lease, `ClaimLost`) says so with a
hint that works as printed: `wfrun --store URL show RUN`, with the store the command was given.
The store's message says the fact only; the command adds the hint (wfrun.cli._settings)."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import _pg
import pytest

from wfrun.errors import TAKEN_OVER

STEAL_PY = """
    import os

    import psycopg


    def grab(ctx):
        # another process takes the run over while this step runs: its claim, a new token
        with psycopg.connect(os.environ["STEAL_URL"], autocommit=True) as conn:
            conn.execute("UPDATE wfrun_claims SET token = nextval('wfrun_claim_tokens') "
                         "WHERE run_id = %s", [ctx.run_id])
        return 1
"""


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    for name, manifest in (("stolen", "steps: [{id: grab}, {id: after, handler: grab}]"),
                           ("later", "steps: [{id: nap, sleep: 1h}, {id: grab}]")):
        (workflows / f"{name}.yaml").write_text(manifest + "\n")
        (workflows / f"{name}.py").write_text(textwrap.dedent(STEAL_PY))
    with _pg.schema() as url:
        yield tmp_path, url


def _wfrun(root: Path, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    return subprocess.run([sys.executable, "-m", "wfrun", "--store", url, *args], cwd=root,
                          env={**env, "STEAL_URL": url}, capture_output=True, text=True,
                          timeout=60)


def test_a_run_taken_over_is_said_with_a_show_command_naming_the_store(
        project: tuple[Path, str]) -> None:
    root, url = project
    show = f"wfrun --store {shlex.quote(url)} show"
    started = _wfrun(root, url, "start", "stolen", "--run-id", "r1")
    assert started.returncode == 0, started.stderr
    [said] = [line for line in started.stderr.splitlines() if "lost its lease" in line]
    assert said.startswith("warning: run r1 was taken over by another process: ")
    assert said.endswith(f"if such stalls are expected ({show} r1)"), said
    assert said.count(" show r1") == 1
    as_json = _wfrun(root, url, "start", "stolen", "--run-id", "r2", "--json")
    [warning] = json.loads(as_json.stdout)["warnings"]
    assert warning.endswith(f"({show} r2)") and f"warning: {warning}" in as_json.stderr
    # the printed command works as printed
    command = shlex.split(said[said.rindex("(") + 1:-1])
    assert command[:3] == ["wfrun", "--store", url]
    shown = _wfrun(root, url, *command[3:], "--json")
    assert shown.returncode == 0 and json.loads(shown.stdout)["run_id"] == "r1"
    # tick says it as an error of the run, with the same hint (--json too)
    assert _wfrun(root, url, "start", "later", "--run-id", "t1").returncode == 0
    ticked = _wfrun(root, url, "tick", "--now", "2099-01-01T00:00:00Z", "--json")
    assert ticked.returncode == 1  # (r1 and r2, left running, are recovered and taken too)
    [error] = [e for e in json.loads(ticked.stdout)["errors"] if e["run_id"] == "t1"]
    assert error["message"].startswith("run t1 was taken over by another process: ")
    assert error["message"].endswith(f"({show} t1)")
    assert f"error: {error['message']}" in ticked.stderr.splitlines()


def test_the_stores_message_says_the_fact_only() -> None:
    from wfrun.store.postgres._leases import lost_lease

    message = lost_lease("r1", 2.0)
    assert TAKEN_OVER.search(message)[1] == "r1"  # type: ignore[index]
    assert "wfrun" not in message.replace("WFRUN_", "")
