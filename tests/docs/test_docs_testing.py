"""docs/testing.md's complete example (manifest, module, test) is extracted and run by pytest."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

BLOCK = re.compile(r"```(?:yaml|python)\n# ((?:workflows|tests)/[\w.-]+)\n(.*?)```", re.DOTALL)


def test_the_testing_guide_example_passes(tmp_path: Path) -> None:
    blocks = BLOCK.findall((REPO / "docs" / "testing.md").read_text())
    assert [name for name, _ in blocks] == [
        "workflows/refund.yaml", "workflows/refund.py", "tests/test_refund.py"]
    for name, body in blocks:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(body)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("WFRUN_", "PYTEST_"))}
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           f"--basetemp={tmp_path / '.pytest-tmp'}", "tests/test_refund.py"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "3 passed" in proc.stdout
