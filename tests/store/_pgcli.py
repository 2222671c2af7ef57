"""The PostgreSQL store from the command line, for tests: a DBA's statements, the schema of a
store URL, `wfrun --store URL ...` in a real process, and a project with one workflow."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import Outcome


def sql(url: str, *statements: str) -> None:
    """Statements as a DBA would run them."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


def schema_of(url: str) -> str:
    """The schema a test store URL's search_path names."""
    return url.rpartition("search_path%3D")[2].split("&")[0]


def wfrun(root: Path, store: str, *args: str) -> Outcome:
    """`python -m wfrun --store STORE ARGS` in `root`, with no WFRUN_* of the caller's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WFRUN_")}
    proc = subprocess.run([sys.executable, "-m", "wfrun", "--store", store, *args],
                          capture_output=True, text=True, timeout=60, cwd=root, env=env)
    return Outcome(proc.returncode, proc.stdout, proc.stderr)


def project(root: Path) -> Path:
    """A project with one workflow (`hello`), so that nothing is missing but the store."""
    workflows = root / "workflows"
    workflows.mkdir()
    (workflows / "hello.yaml").write_text("steps: [{id: greet}]\n")
    (workflows / "hello.py").write_text(textwrap.dedent("""
        def greet(ctx):
            return "hi"
    """))
    return root
