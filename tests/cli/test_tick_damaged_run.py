"""`tick --workers` with one damaged run among many due, on the file store and on PostgreSQL
(SPEC §5: tick fires every due timer; SPEC §6: every other run keeps working): the damaged run is
reported once and left as it is, with no lease left on it, and every other due run is advanced
once, in the same tick. On PostgreSQL each worker acquires batches of its own, and a run that
could not be read stays due: the other workers must not take it again."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from wfrun.testing import Harness

from ._damaged import damage

POLL = "steps:\n  - id: poll\n"
POLL_PY = """\
def poll(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("10s", {}, 3)
    return ctx.run.runs
"""
RUNS = 80  # shares of 40 for two workers: each acquires more than one batch (32)
DAMAGED = "r05"  # among the first due


def test_a_damaged_run_is_reported_once_and_every_other_due_run_advanced(
    store_url: str, tmp_path: Path
) -> None:
    workflows = tmp_path / "workflows"
    workflows.mkdir()
    (workflows / "poll.yaml").write_text(POLL)
    (workflows / "poll.py").write_text(POLL_PY)
    harness = Harness(workflows, store_url)
    runs = [harness.start("poll", run_id=f"r{i:02d}")["run_id"] for i in range(1, RUNS + 1)]
    stored = damage(store_url, DAMAGED)
    before = stored()
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    proc = subprocess.run(
        [sys.executable, "-m", "wfrun", "--store", store_url, "--workflows-dir", str(workflows),
         "tick", "--workers", "2", "--now", "2099-01-01T00:00:00Z", "--json"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
    assert proc.returncode == 1, proc.stderr  # a run could not be read; the rest advanced
    report = json.loads(proc.stdout)
    assert [e["run_id"] for e in report["errors"]] == [DAMAGED], report["errors"]
    advanced = [a["run_id"] for a in report["advanced"]]
    assert sorted(advanced) == sorted(set(runs) - {DAMAGED}), advanced  # each once
    assert len([line for line in proc.stderr.splitlines() if DAMAGED in line]) == 1, proc.stderr
    assert stored() == before  # untouched, and no lease left behind (PostgreSQL)
    for run_id in (runs[0], runs[-1]):
        assert harness.show(run_id)["status"] == "completed"


def test_the_runs_a_worker_took_are_known_to_the_others() -> None:
    from wfrun.engine._workers import Tried

    tried = Tried()
    tried.add("r01")
    tried.share()
    try:
        pid = os.fork()
        if pid == 0:  # a worker
            tried.add("r02")
            os._exit(0 if "r01" in tried and "r03" not in tried else 1)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert "r02" in tried and "r01" in tried and "r03" not in tried
        tried.add("r03")
    finally:
        tried.close()
    assert "r03" in tried  # kept once no longer shared
