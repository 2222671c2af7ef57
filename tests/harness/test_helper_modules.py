"""A workflow's step module may import helpers from its own directory (`import rates`). A
process that lives on (`tick --watch`, `serve`, a test session) runs their current code: an
edited helper is imported afresh when a step module is next loaded, and a helper of the same
name in another project's directory is that project's own."""

from __future__ import annotations

import os
import time
from pathlib import Path

from wfrun.testing import Harness

MANIFEST = "name: quote\nsteps:\n  - id: price\n"
MODULE = """
import rates

def price(ctx):
    if ctx.run.runs == 1:
        ctx.flow.rerun("1m")
    return rates.RATE
"""


def project(root: Path, rate: int) -> Path:
    workflows = root / "workflows"
    workflows.mkdir(parents=True)
    (workflows / "quote.yaml").write_text(MANIFEST)
    (workflows / "quote.py").write_text(MODULE)
    (workflows / "rates.py").write_text(f"RATE = {rate}\n")
    return workflows


def edit(path: Path, text: str) -> None:
    """Rewrite a file so that its change is seen even within the file system's mtime tick."""
    before = path.stat().st_mtime_ns
    path.write_text(text)
    if path.stat().st_mtime_ns == before:
        os.utime(path, ns=(time.time_ns(), before + 1_000_000))


def test_a_helper_edited_while_the_process_lives_is_imported_afresh(tmp_path: Path) -> None:
    workflows = project(tmp_path, 1)
    harness = Harness(workflows, tmp_path / "state")
    run = harness.start("quote")
    edit(workflows / "rates.py", "RATE = 2\n")  # the deploy: the helper alone changed
    harness.advance("1m")
    assert harness.show(run["run_id"])["output"] == 2


def test_a_helper_of_the_same_name_in_another_project_is_that_projects(tmp_path: Path) -> None:
    first = Harness(project(tmp_path / "a", 10), tmp_path / "a" / "state")
    second = Harness(project(tmp_path / "b", 20), tmp_path / "b" / "state")
    one, two = first.start("quote"), second.start("quote")
    first.advance("1m")
    second.advance("1m")
    assert first.show(one["run_id"])["output"] == 10
    assert second.show(two["run_id"])["output"] == 20
